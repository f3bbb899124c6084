"""The hosted services' HTTP shapes (/fal-ai/dwpose, /v1/sdxl-openpose) and the MCP tools, against
`python app.py --preset tiny`, with plain HTTP (httpx), gradio_client and the mcp client; and the URL fetcher
against a local HTTP server."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import gradio as gr
import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.utils import Status
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from PIL import Image

import app
from pipelines.errors import ValidationError
from pipelines.generation.metadata import parse_infotext
from pipelines.settings import Settings
from tests.app_helpers import REPO, running_app, synthetic_photo, write_png
from tests.test_pose_formats import BODY_18, cmu_openpose, controlnet_preprocessor
from ui.fetch import FetchPolicy, fetch_url
from ui.hosted_api import ApiError, HostedApi

pytestmark = pytest.mark.server

KEY = "test-key-123"
HEADERS = {"x-api-key": KEY}
PRESET = REPO / "assets" / "poses" / "standing.json"
SMALL = {"num_inference_steps": 1, "width": 64, "height": 64}
TIMEOUT_S = 120


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    env = {"POSE_STUDIO_API_KEY": KEY, "POSE_STUDIO_FETCH_URLS": "1"}
    with running_app(tmp_path_factory.mktemp("hosted"), "--max-queue-size", "1", env=env) as url:
        yield url.rstrip("/")


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    return write_png(tmp_path_factory.mktemp("inputs") / "photo.png", synthetic_photo())


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def post(server: str, path: str, body: dict, headers: dict | None = None) -> httpx.Response:
    return httpx.post(
        server + path, json=body, headers=HEADERS if headers is None else headers, timeout=TIMEOUT_S
    )


def png_pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def gradio_dwpose(server: str, photo: Path, mode: str = "body-pose") -> np.ndarray:
    drawn, _ = Client(server, verbose=False).predict(
        image=handle_file(str(photo)), draw_mode=mode, api_name="/dwpose"
    )
    return np.asarray(Image.open(drawn).convert("RGB"))


# --- /fal-ai/dwpose ---------------------------------------------------------------------------------------


def test_dwpose_answers_the_hosted_image_object_with_a_data_url(server, photo):
    response = post(server, "/fal-ai/dwpose", {"image_url": f"data:image/png;base64,{b64(photo)}"})
    assert response.status_code == 200, response.text
    image = response.json()["image"]
    header, _, payload = image["url"].partition(",")
    assert header == "data:image/png;base64"
    data = base64.b64decode(payload)
    assert {key: image[key] for key in ("content_type", "file_name", "file_size", "width", "height")} == {
        "content_type": "image/png",
        "file_name": "dwpose-body-pose.png",
        "file_size": len(data),
        "width": 240,
        "height": 320,
    }
    assert np.array_equal(png_pixels(data), gradio_dwpose(server, photo))  # the page's own /dwpose, exactly


def test_dwpose_url_on_this_server_and_the_fal_key_header(server, photo):
    body = {"image_url": f"data:image/png;base64,{b64(photo)}", "draw_mode": "full-pose", "sync_mode": False}
    response = post(server, "/fal-ai/dwpose", body, headers={"Authorization": f"Key {KEY}"})
    assert response.status_code == 200, response.text
    url = response.json()["image"]["url"]
    assert url.startswith(server + "/gradio_api/file=")
    fetched = httpx.get(url, timeout=TIMEOUT_S)
    assert fetched.status_code == 200
    assert np.array_equal(png_pixels(fetched.content), gradio_dwpose(server, photo, "full-pose"))


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"x-api-key": "wrong"}, 401),
        ({"Authorization": "Key wrong"}, 401),
        ({"Authorization": KEY}, 401),
    ],
)
def test_the_api_key_is_required(server, photo, headers, status):
    response = post(server, "/fal-ai/dwpose", {"image_url": "data:image/png;base64,AAAA"}, headers=headers)
    assert response.status_code == status
    assert response.json() == {
        "error": {
            "type": "unauthorized",
            "message": "An API key is needed: send x-api-key: KEY or Authorization: Key KEY.",
        }
    }


DWPOSE, SDXL = "/fal-ai/dwpose", "/v1/sdxl-openpose"
SDXL_BODY = {"image": "AAAA", "prompt": "x"}


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (DWPOSE, {"image_url": "data:,x", "colour": 1}, "Unknown field(s): colour. Accepted: image_url"),
        (DWPOSE, {"draw_mode": "body-pose"}, "image_url is required."),
        (DWPOSE, {"image_url": "data:,x", "draw_mode": "skeleton"}, "Unknown draw mode 'skeleton'"),
        (DWPOSE, {"image_url": "not base64!"}, "image must be an http(s) URL, a data: URL or base64"),
        (DWPOSE, {"image_url": "data:,hello"}, "The upload is not an image we can read"),
        (DWPOSE, {"image_url": 5}, "image_url must be text (got 5)"),
        (SDXL, {**SDXL_BODY, "samples": 9}, "samples must be an integer between 1 and 4 (got 9)"),
        (SDXL, {**SDXL_BODY, "scheduler": "K_EULER"}, "scheduler must be one of: DDIM"),
        (SDXL, {**SDXL_BODY, "prompt": " "}, "prompt must not be empty"),
        (SDXL, {**SDXL_BODY, "base64": "yes"}, "base64 must be true or false"),
        (SDXL, {**SDXL_BODY, "steps": 3}, "Unknown field(s): steps."),
    ],
)
def test_bad_fields_answer_400_with_the_engines_message(server, path, body, message):
    response = post(server, path, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request" and message in error["message"]


def test_a_body_that_is_not_json_is_refused_in_the_same_shape(server):
    response = httpx.post(server + "/v1/sdxl-openpose", content=b"{oops", headers=HEADERS, timeout=TIMEOUT_S)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("The body is not valid JSON")


def test_private_and_loopback_urls_are_refused(server, photo):
    for url in (f"{server}/favicon.ico", "http://10.1.2.3/photo.png", "http://192.168.0.10/x.png"):
        response = post(server, "/fal-ai/dwpose", {"image_url": url})
        assert response.status_code == 400, url
        assert "is a loopback or private address" in response.json()["error"]["message"]
    response = post(server, "/fal-ai/dwpose", {"image_url": "ftp://example.com/x.png"})
    assert response.json()["error"]["message"].startswith(
        "image must be an http(s) URL, a data: URL or base64"
    )


# --- /v1/sdxl-openpose ------------------------------------------------------------------------------------


def test_sdxl_openpose_raw_base64_photo_returns_base64_pngs_and_their_seeds(server, photo):
    body = {"image": b64(photo), "prompt": "a knight", "samples": 2, "seed": 40, "base64": True, **SMALL}
    response = post(server, "/v1/sdxl-openpose", body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["seeds"] == [40, 41] and len(answer["images"]) == 2
    for encoded, seed in zip(answer["images"], answer["seeds"], strict=True):
        data = base64.b64decode(encoded)
        assert png_pixels(data).shape == (64, 64, 3)
        fields = parse_infotext(Image.open(io.BytesIO(data)).text["parameters"]).fields
        assert (fields["seed"], fields["prompt"], fields["num_inference_steps"]) == (seed, "a knight", 1)


def test_sdxl_openpose_urls_match_the_page_endpoint_pixel_for_pixel(server):
    pose = json.loads(PRESET.read_text())
    same = {
        "prompt": "a dancer",
        "negative_prompt": "blurry",
        "seed": 7,
        "scheduler": "DDIM",
        "guidance_scale": 5,
    }
    body = {"image": pose, **same, **SMALL}
    response = post(server, "/v1/sdxl-openpose", body, headers={"Authorization": f"Key {KEY}"})
    assert response.status_code == 200, response.text
    (url,), seeds = response.json()["images"], response.json()["seeds"]
    assert seeds == [7] and url.startswith(server + "/gradio_api/file=")
    served = png_pixels(httpx.get(url, timeout=TIMEOUT_S).content)
    samples, _ = Client(server, verbose=False).predict(
        image=handle_file(str(PRESET)), api_name="/generate", **same, **SMALL
    )
    assert np.array_equal(served, np.asarray(Image.open(samples[0]["image"]).convert("RGB")))


def test_sdxl_openpose_data_url_of_a_pose_json_with_a_draw_mode(server):
    data_url = "data:application/json;base64," + b64(PRESET)
    body = {
        "image": data_url,
        "prompt": "a dancer",
        "seed": 3,
        "draw_mode": "full-pose",
        "base64": True,
        **SMALL,
    }
    response = post(server, "/v1/sdxl-openpose", body)
    assert response.status_code == 200, response.text
    assert (
        response.json()["seeds"] == [3]
        and png_pixels(base64.b64decode(response.json()["images"][0])).shape[0] == 64
    )


def test_a_full_queue_answers_429(server, photo):
    client = Client(server, verbose=False)
    running = client.submit(
        image=handle_file(str(PRESET)), prompt="long", num_inference_steps=100, width=512, height=512, seed=1,
        api_name="/generate",
    )  # fmt: skip
    _wait_for(lambda: running.status().code == Status.PROCESSING)
    waiting = Client(server, verbose=False).submit(
        image=handle_file(str(photo)), draw_mode="body-pose", api_name="/dwpose"
    )
    _wait_for(lambda: waiting.status().code == Status.IN_QUEUE)
    response = post(server, "/fal-ai/dwpose", {"image_url": f"data:image/png;base64,{b64(photo)}"})
    assert response.status_code == 429
    assert response.json() == {"error": {"type": "queue_full", "message": "Queue is full! Please try again."}}
    running.cancel()
    waiting.result(timeout=TIMEOUT_S)


def _wait_for(condition, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.05)


# --- MCP ----------------------------------------------------------------------------------------------------


async def _mcp(server: str, photo: Path) -> tuple[list, list, list]:
    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        pass

    arguments = {"image": f"data:image/png;base64,{b64(photo)}", "draw_mode": "body-pose"}
    async with (
        streamable_http_client(f"{server}/gradio_api/mcp/") as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = (await session.list_tools()).tools
        with_progress = await session.call_tool("dwpose", arguments, progress_callback=on_progress)
        plain = await session.call_tool("dwpose", arguments)
        return tools, with_progress.content, plain.content


def test_mcp_lists_the_three_tools_and_dwpose_returns_a_png(server, photo):
    tools, with_progress, plain = asyncio.run(_mcp(server, photo))
    assert sorted(tool.name for tool in tools) == ["dwpose", "generate", "sweep"]  # no UI events
    by_name = {tool.name: tool for tool in tools}
    assert by_name["dwpose"].description.startswith("Find the whole-body pose")
    properties = by_name["generate"].inputSchema["properties"]
    assert properties["controlnet_scale"]["description"] == "how strictly to follow the pose, 0-1 (1.0)."
    assert "1-10 [5]" in by_name["sweep"].inputSchema["properties"]["x_values"]["description"]
    expected = gradio_dwpose(server, photo)
    image = with_progress[0]
    assert (image.type, image.mimeType) == ("image", "image/png")
    assert np.array_equal(png_pixels(base64.b64decode(image.data)), expected)
    # Without a progress token Gradio 6.31 answers the outputs as one text: the PNG is at its URL.
    url = plain[0].text.split("'url': '", 1)[1].split("'", 1)[0]
    assert np.array_equal(png_pixels(httpx.get(url, timeout=TIMEOUT_S).content), expected)


# --- fetching URLs ------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[int, dict, bytes]]] = {}

    def do_GET(self) -> None:
        status, headers, body = self.routes.get(self.path, (404, {}, b""))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def web(photo) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    _Handler.routes = {
        "/photo.png": (200, {"Content-Type": "image/png"}, photo.read_bytes()),
        "/moved": (302, {"Location": "/photo.png"}, b""),
        "/to-private": (302, {"Location": "http://10.0.0.7/photo.png"}, b""),
        "/to-file": (302, {"Location": "file:///etc/passwd"}, b""),
        "/loop": (302, {"Location": "/loop"}, b""),
        "/big": (200, {}, bytes(2048)),
        "/gone": (404, {}, b""),
    }
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield base
    server.shutdown()


LOOPBACK = FetchPolicy(allow_loopback=True, max_bytes=1024 * 1024, timeout_s=5)


def test_fetch_follows_checked_redirects(web, photo):
    assert fetch_url(f"{web}/photo.png", LOOPBACK) == photo.read_bytes()
    assert fetch_url(f"{web}/moved", LOOPBACK) == photo.read_bytes()


@pytest.mark.parametrize(
    ("path", "policy", "message"),
    [
        ("/photo.png", FetchPolicy(False, 2**20, 5), "127.0.0.1 is a loopback or private address"),
        ("/to-private", LOOPBACK, "10.0.0.7 is a loopback or private address"),
        ("/to-file", LOOPBACK, "image URL must be http(s) or a data: URL"),
        ("/loop", LOOPBACK, "redirected more than 5 times"),
        ("/big", FetchPolicy(True, 1024, 5), "the file is larger than 1 KB"),
        ("/gone", LOOPBACK, "image URL answered HTTP 404"),
    ],
)  # fmt: skip
def test_fetch_refuses(web, path, policy, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fetch_url(web + path, policy)


def test_urls_are_fetched_only_when_the_setting_is_on(web, tmp_path, photo):
    off = HostedApi(Settings(), local_url=lambda: "")
    with pytest.raises(ApiError, match="Fetching image URLs is off on this server"):
        off._image_file(f"{web}/photo.png", tmp_path)
    on = HostedApi(Settings(fetch_urls=True, fetch_allow_loopback=True), local_url=lambda: "")
    assert Path(on._image_file(f"{web}/moved", tmp_path)).read_bytes() == photo.read_bytes()


def test_a_pngs_parameters_round_trip_through_the_hosted_route(server):
    """A sample's own infotext, read back and sent again, makes the same image."""
    body = {"image": json.loads(PRESET.read_text()), "prompt": "a dancer", "seed": 21, "scheduler": "PNDM"}
    first = post(server, "/v1/sdxl-openpose", {**body, **SMALL, "base64": True}).json()
    png = base64.b64decode(first["images"][0])
    fields = parse_infotext(Image.open(io.BytesIO(png)).text["parameters"]).request_fields()
    assert (fields["seed"], fields["scheduler"]) == (21, "PNDM")  # written as A1111's "PLMS"
    names = ("prompt", "negative_prompt", "scheduler", "seed", "width", "height", "num_inference_steps")
    again = {name: fields[name] for name in (*names, "guidance_scale", "controlnet_scale")}
    answer = post(server, "/v1/sdxl-openpose", {"image": body["image"], **again, "base64": True}).json()
    assert answer["seeds"] == [21]
    assert np.array_equal(png_pixels(base64.b64decode(answer["images"][0])), png_pixels(png))


def test_other_tools_openpose_json_through_the_server(server, tmp_path):
    """CMU OpenPose (no canvas) and sd-webui-controlnet's normalised JSON, via gradio_client and HTTP."""
    cmu = tmp_path / "cmu.json"
    cmu.write_text(json.dumps(cmu_openpose()))
    client = Client(server, verbose=False)
    _, pose_json = client.predict(image=handle_file(str(cmu)), draw_mode="body-pose", api_name="/dwpose")
    assert (pose_json["version"], pose_json["canvas_width"], pose_json["canvas_height"]) == (1.3, 370, 389)
    response = post(
        server,
        "/fal-ai/dwpose",
        {"image_url": "data:application/json," + json.dumps(controlnet_preprocessor())},
    )
    assert response.status_code == 200, response.text
    drawn = png_pixels(base64.b64decode(response.json()["image"]["url"].split(",", 1)[1]))
    assert drawn.shape == (512, 768, 3)
    nose_x, nose_y = BODY_18[0]
    assert tuple(drawn[nose_y, nose_x]) == (255, 0, 0)  # the nose, scaled back to its pixel


@pytest.mark.parametrize(("value", "expected"), [(None, True), ("0", False)])
def test_the_mcp_server_is_on_unless_turned_off(monkeypatch, tmp_path, value, expected):
    launched = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: launched.update(kwargs))
    if value is not None:
        monkeypatch.setenv("POSE_STUDIO_MCP_SERVER", value)
    app.main(["--preset", "tiny"])
    assert launched["mcp_server"] is expected
    paths = [route.path for route in launched["app_kwargs"]["routes"]]
    assert paths == ["/fal-ai/dwpose", "/v1/sdxl-openpose"]
