"""The real app (`python app.py --preset tiny`) on 127.0.0.1, driven with gradio_client like an API user."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from gradio_client.utils import QueueError, Status
from PIL import Image

import app
from pipelines.generation import SCHEDULERS
from pipelines.generation.metadata import parse_infotext
from pipelines.pose import DrawMode, draw_pose, from_openpose_json
from tests.app_helpers import REPO, running_app, synthetic_photo, write_png

pytestmark = pytest.mark.server

PRESET = REPO / "assets" / "poses" / "standing.json"
MAX_QUEUE_SIZE = 2
# Low limits, so the tests can go over them with small files.
# Low limits to test them with small files; 1.5 MP still holds the pose presets' 896x1152 canvases.
LIMITS = {"POSE_STUDIO_MAX_UPLOAD_MB": "1", "POSE_STUDIO_MAX_PIXELS": "1500000"}
SMALL = {"width": 128, "height": 128}
JOB_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> str:
    with running_app(
        tmp_path_factory.mktemp("app"), "--max-queue-size", str(MAX_QUEUE_SIZE), env=LIMITS
    ) as url:
        yield url


@pytest.fixture(scope="module")
def client(server) -> Client:
    return Client(server, verbose=False)


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    return write_png(tmp_path_factory.mktemp("inputs") / "photo.png", synthetic_photo())


def generate(client: Client, seed: int, **overrides):
    arguments = {
        "image": handle_file(str(PRESET)),
        "prompt": "a knight in armour",
        "num_inference_steps": 1,
        "seed": seed,
        **SMALL,
        **overrides,
    }
    return client.submit(**arguments, api_name="/generate")


def test_flags_build_settings(monkeypatch):
    monkeypatch.setenv("POSE_STUDIO_PORT", "9000")
    monkeypatch.setenv("POSE_STUDIO_DEVICE", "cuda")
    settings = app.settings_from(app.parse_args(["--preset", "tiny", "--device", "cpu", "--vae-tiling"]))
    assert (settings.preset, settings.pose_models) == ("tiny", "tiny")
    assert (settings.port, settings.device, settings.vae_tiling) == (9000, "cpu", True)
    assert app.settings_from(app.parse_args(["--models-dir", "/models"])).dwpose_dir == "/models"
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")  # what Hugging Face Spaces sets
    assert app.settings_from(app.parse_args([])).host == "0.0.0.0"
    assert app.settings_from(app.parse_args(["--host", "127.0.0.2"])).host == "127.0.0.2"


def test_only_the_documented_endpoints_are_public(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(endpoints) == {"/dwpose", "/generate", "/sweep"}
    names = {name: [parameter["parameter_name"] for parameter in endpoint["parameters"]]
             for name, endpoint in endpoints.items()}  # fmt: skip
    scales = ["guidance_scale", "controlnet_scale"]
    sampler = ["scheduler", "num_inference_steps", *scales, "seed", "width", "height", "draft", "draw_mode"]
    assert names == {
        "/dwpose": ["image", "draw_mode"],
        "/generate": ["image", "prompt", "negative_prompt", "samples", *sampler],
        "/sweep": [
            "image",
            "prompt",
            "x_axis",
            "x_values",
            "y_axis",
            "y_values",
            "negative_prompt",
            *sampler,
        ],
    }


@pytest.mark.parametrize("mode", list(DrawMode))
def test_dwpose_in_every_mode_returns_lossless_png(client, photo, mode):
    image_path, pose_json = client.predict(
        image=handle_file(str(photo)), draw_mode=mode.value, api_name="/dwpose"
    )
    pose = from_openpose_json(pose_json)
    assert len(pose.people) == 1 and (pose.width, pose.height) == (240, 320)
    with Image.open(image_path) as image:
        assert image.format == "PNG"
        received = np.asarray(image.convert("RGB"))
    assert np.array_equal(received, draw_pose(pose, mode))  # exact OpenPose colours survive the trip


def test_generate_with_every_scheduler_returns_its_seeds(client):
    for index, name in enumerate(SCHEDULERS):
        images, seeds = generate(client, seed=100 + index, scheduler=name).result(timeout=JOB_TIMEOUT_S)
        assert seeds == [100 + index], name
        assert [item["caption"] for item in images] == [f"seed {100 + index}"]
        with Image.open(images[0]["image"]) as image:
            assert (image.format, image.size) == ("PNG", (128, 128))
            assert parse_infotext(image.text["parameters"]).fields["scheduler"] == name


def test_two_samples_get_consecutive_seeds(client):
    # Whole-number scales arrive as JSON ints, as the browser sends them.
    images, seeds = generate(client, seed=5, samples=2, controlnet_scale=1, guidance_scale=5).result(
        timeout=JOB_TIMEOUT_S
    )
    assert seeds == [5, 6] and len(images) == 2


def test_bad_uploads_give_readable_errors(client, tmp_path):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    with pytest.raises(AppError, match="corrupt or truncated"):
        client.predict(image=handle_file(str(corrupt)), draw_mode="body-pose", api_name="/dwpose")
    bad_json = tmp_path / "pose.json"
    bad_json.write_text(json.dumps({"people": []}))
    with pytest.raises(AppError, match="canvas_width"):
        client.predict(image=handle_file(str(bad_json)), draw_mode="body-pose", api_name="/dwpose")
    too_many_pixels = write_png(tmp_path / "wide.png", np.full((1000, 1600, 3), 90, np.uint8))
    with pytest.raises(AppError) as error:
        client.predict(image=handle_file(str(too_many_pixels)), draw_mode="body-pose", api_name="/dwpose")
    assert str(error.value) == "The image is 1600x1000 = 1.6 MP, above the 1.5 MP limit."


def test_an_upload_over_the_size_limit_is_refused(server, tmp_path):
    too_big = tmp_path / "big.png"
    too_big.write_bytes(bytes(1024 * 1024 + 1))
    with too_big.open("rb") as file:  # what a browser or a raw HTTP client meets at the server
        response = httpx.post(f"{server}gradio_api/upload", files={"files": file}, timeout=30)
    assert response.status_code == 413
    assert "maximum allowed size of 1048576 bytes" in response.text
    with pytest.raises(ValueError, match="exceeds the maximum file size of 1048576 bytes"):
        Client(server, verbose=False).predict(  # gradio_client checks the limit before sending
            image=handle_file(str(too_big)), draw_mode="body-pose", api_name="/dwpose"
        )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        # The engine's validation, on the raw values: the components neither round nor check on their own.
        ({"prompt": "  "}, "prompt must not be empty"),
        ({"num_inference_steps": 500}, "num_inference_steps must be an integer between 1 and 100 (got 500)"),
        ({"num_inference_steps": 2.5}, "num_inference_steps must be an integer between 1 and 100 (got 2.5)"),
        ({"samples": "abc"}, "samples must be an integer between 1 and 4 (got 'abc')"),
        ({"guidance_scale": True}, "guidance_scale must be a number between 1 and 25 (got True)"),
        ({"seed": -5}, "seed must be -1 (random) or an integer between 0 and 999999999999999 (got -5)"),
        ({"width": 100, "height": 128}, "width must be a multiple of 8 (got 100)"),
    ],
)
def test_bad_generation_requests_give_readable_errors(client, overrides, message):
    with pytest.raises(AppError) as error:
        generate(client, **{"seed": 1, **overrides}).result(timeout=JOB_TIMEOUT_S)
    assert str(error.value) == message


def test_a_pose_without_people_says_so(client, tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"canvas_width": 512, "canvas_height": 512, "people": []}))
    with pytest.raises(AppError) as error:
        generate(client, seed=1, image=handle_file(str(empty))).result(timeout=JOB_TIMEOUT_S)
    assert str(error.value) == "There is no person in the pose, so there is nothing for the image to follow."


def test_a_full_queue_says_busy_try_again(server, photo):
    clients = [Client(server, verbose=False) for _ in range(MAX_QUEUE_SIZE + 2)]
    running = generate(clients[0], seed=1, num_inference_steps=100, width=512, height=512)
    _wait_for(lambda: running.status().code == Status.PROCESSING)
    waiting = [
        clients[index].submit(image=handle_file(str(photo)), draw_mode="body-pose", api_name="/dwpose")
        for index in range(1, MAX_QUEUE_SIZE + 1)
    ]
    _wait_for(lambda: all(job.status().code == Status.IN_QUEUE for job in waiting))
    with pytest.raises(QueueError, match="Queue is full! Please try again"):
        clients[-1].predict(image=handle_file(str(photo)), draw_mode="body-pose", api_name="/dwpose")
    running.cancel()
    for job in waiting:  # the queue drains once the long run is cancelled
        _, pose_json = job.result(timeout=JOB_TIMEOUT_S)
        assert len(pose_json["people"]) == 1


def test_two_clients_at_once_both_finish(server):
    clients = [Client(server, verbose=False) for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(lambda c, s: generate(c, seed=s).result(timeout=JOB_TIMEOUT_S), c, 40 + i)
                   for i, c in enumerate(clients)]  # fmt: skip
        results = [future.result() for future in futures]
    assert [seeds for _, seeds in results] == [[40], [41]]


def _wait_for(condition, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def sdxl_without_weights(tmp_path_factory) -> str:
    """`python app.py --preset sdxl` offline with an empty Hugging Face cache: no weights anywhere."""
    tmp = tmp_path_factory.mktemp("sdxl")
    with running_app(tmp, preset="sdxl", env={"HF_HUB_CACHE": str(tmp / "hub")}) as url:
        yield url


def test_missing_weights_give_the_engines_message_and_the_app_stays_up(sdxl_without_weights, photo):
    client = Client(sdxl_without_weights, verbose=False)
    with pytest.raises(AppError) as detect:
        client.predict(image=handle_file(str(photo)), draw_mode="body-pose", api_name="/dwpose")
    assert str(detect.value).startswith("Could not get yolox_l.onnx from the Hugging Face repo yzd-v/DWPose")
    assert "--models-dir DIR" in str(detect.value)
    with pytest.raises(AppError) as generation:
        generate(client, seed=1).result(timeout=JOB_TIMEOUT_S)  # a pose JSON: no detection needed
    assert str(generation.value).startswith(
        "The SDXL base model 'stabilityai/stable-diffusion-xl-base-1.0' is neither a local folder nor in the "
        "Hugging Face cache"
    )
    assert "python app.py --download" in str(generation.value)
    _, pose_json = client.predict(image=handle_file(str(PRESET)), draw_mode="body-pose", api_name="/dwpose")
    assert len(pose_json["people"]) == 1  # still up, and a pose JSON needs no weights


def test_download_offline_says_what_is_missing_in_one_line(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    command = [sys.executable, "app.py", "--download"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: Could not get yolox_l.onnx from the Hugging Face repo yzd-v/DWPose")
    assert "Traceback" not in done.stderr
