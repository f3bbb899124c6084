"""The page is built and served before any model library is imported: torch, diffusers and onnxruntime load
on first use or in the background after the first page (benchmarks/bench_startup.py times it)."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

from pipelines.preload import import_when_serving

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "diffusers", "onnxruntime", "transformers", "peft")

BUILD_THE_PAGE = f"""
import sys
import app
from pipelines.settings import Settings
from ui.page import create_demo
from ui.studio import PoseStudio

settings = app.settings_from(app.parse_args(["--preset", "tiny"]))
studio = PoseStudio(settings)
demo = create_demo(studio)
assert studio.is_stand_in
print(sorted(name for name in {HEAVY!r} if name in sys.modules))
"""


def test_building_the_page_imports_no_model_library(tmp_path):
    env = {"POSE_STUDIO_CACHE_DIR": str(tmp_path), "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", BUILD_THE_PAGE],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_background_import_waits_for_the_page_to_answer(tmp_path, monkeypatch):
    (tmp_path / "preload_probe.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        thread = import_when_serving(url, ("preload_probe",))
        thread.join(timeout=1)
        assert thread.is_alive() and "preload_probe" not in sys.modules  # no answer yet: nothing imported
        threading.Thread(target=server.serve_forever, daemon=True).start()
        thread.join(timeout=30)
        assert "preload_probe" in sys.modules
    finally:
        server.shutdown()
        server.server_close()
        sys.modules.pop("preload_probe", None)
