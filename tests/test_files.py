"""Atomic writes (pipelines/files.py): a file is under its name complete, or not at all."""

from __future__ import annotations

import inspect
import json
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from pipelines.files import save_image, write_text, write_zip
from tests.app_helpers import REPO
from ui.served import ServedImages

# A child that starts saving a PNG, writes part of it, says so, and hangs there until it is killed.
KILLED_MID_SAVE = """
import sys, time
from PIL import Image, PngImagePlugin
from pipelines.files import save_image

original = PngImagePlugin._save
def stalling(image, handle, filename, **kwargs):
    handle.write(b"\\x89PNG\\r\\n\\x1a\\n" + b"\\0" * 1000)
    handle.flush()
    print("writing", flush=True)
    time.sleep(60)
PngImagePlugin._save = stalling
Image.register_save("PNG", stalling)
save_image(Image.new("RGB", (64, 64)), sys.argv[1])
"""


def test_a_process_killed_mid_save_leaves_no_file_under_the_real_name(tmp_path):
    target = tmp_path / "sample-1-seed-1234.png"
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_MID_SAVE, str(target)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "writing"
        partial = [path for path in tmp_path.iterdir() if path.name.startswith(".sample-1-seed-1234.")]
        assert len(partial) == 1 and partial[0].stat().st_size == 1008  # the bytes went to the temporary name
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        child.kill()
    assert not target.exists()


def test_a_save_that_fails_leaves_neither_file(tmp_path):
    class Broken(Exception):
        pass

    image = Image.new("RGB", (8, 8))

    def failing_save(*args, **kwargs):
        raise Broken

    with pytest.raises(Broken), pytest.MonkeyPatch.context() as patch:
        patch.setattr(Image.Image, "save", failing_save)
        save_image(image, tmp_path / "a.png")
    assert list(tmp_path.iterdir()) == []


def test_atomic_writes_replace_the_old_file_whole(tmp_path):
    pixels = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    path = save_image(Image.fromarray(pixels), tmp_path / "a.png")
    old = path.open("rb")  # a reader holding the old file keeps reading the old, complete one
    save_image(Image.new("RGB", (2, 2), (255, 0, 0)), path)
    assert np.array_equal(np.asarray(Image.open(old)), pixels)
    assert Image.open(path).size == (2, 2)
    write_text(tmp_path / "a.json", json.dumps({"seed": 7}))
    archive = write_zip(tmp_path / "run.zip", [path, tmp_path / "a.json"])
    with zipfile.ZipFile(archive) as bundle:
        assert bundle.namelist() == ["a.png", "a.json"] and json.loads(bundle.read("a.json")) == {"seed": 7}
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["a.json", "a.png", "run.zip"]


def test_served_images_get_a_new_name_per_response_and_only_the_newest_stay(tmp_path):
    served = ServedImages(tmp_path / "served", keep=3)
    pixels = np.full((4, 6, 3), 200, np.uint8)

    def preview(upload, progress=None):
        return (pixels, pixels), {"people": []}, "summary"

    def stream(upload):
        yield [Image.fromarray(pixels)], gr.skip()
        yield [("done.png", "seed 1")], [1]

    (first, second), pose_json, text = served.as_files(preview)("a.png")
    assert first != second and Path(first).parent == tmp_path / "served"  # the same image, two files
    assert np.array_equal(np.asarray(Image.open(first)), pixels) and (pose_json, text) == (
        {"people": []},
        "summary",
    )
    assert inspect.signature(served.as_files(preview)) == inspect.signature(preview)  # what Gradio reads
    updates = list(served.as_files(stream)("a.png"))
    assert Path(updates[0][0][0]).exists() and updates[0][1] == gr.skip()
    assert updates[1] == ([("done.png", "seed 1")], [1])  # paths and captions pass through
    kept = sorted(tmp_path.joinpath("served").iterdir())
    assert kept == sorted(Path(path) for path in (first, second, updates[0][0][0]))
    served(pixels)  # a fourth file: the oldest goes
    assert not Path(first).exists() and Path(second).exists()
