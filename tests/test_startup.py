"""The page is built and served before any model library is imported: torch, diffusers and onnxruntime load
on first use or in the background after the first page (benchmarks/bench_startup.py times it)."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from pipelines.preload import import_when_serving

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "diffusers", "onnxruntime", "transformers", "peft")

BUILD_THE_PAGE = f"""
import json
import sys
import app
import gradio as gr
from pipelines.settings import Settings
from ui.gradio_startup import stub_regeneration_skipped
from ui.page import create_demo
from ui.studio import PoseStudio

settings = app.settings_from(app.parse_args(["--preset", "tiny"]))
studio = PoseStudio(settings)
demo = create_demo(studio)
assert studio.is_stand_in
print(json.dumps({{
    "heavy": sorted(name for name in {HEAVY!r} if name in sys.modules),
    "stubs_skipped": stub_regeneration_skipped(),
    "button_events": [event.event_name for event in gr.Button.EVENTS],
    "dependencies": len(demo.fns),
}}))
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
    built = json.loads(done.stdout.strip().splitlines()[-1])
    assert built["heavy"] == []
    # app.py turned Gradio's import-time stub rewrite off (ui/gradio_startup.py); a Gradio release that
    # renames it fails here. The components keep their events and the page all its event handlers.
    assert built["stubs_skipped"] is True
    assert "click" in built["button_events"]
    assert built["dependencies"] >= 30


def test_skipping_stub_regeneration_leaves_gradio_and_its_stubs_as_installed():
    """In a fresh process: the hook is in place before gradio, components defined afterwards (ours too) work
    and get their event methods, and no `.pyi` file in the installed Gradio is touched."""
    script = """
import json, sys
from pathlib import Path
from ui.gradio_startup import skip_stub_regeneration, stub_regeneration_skipped
assert not stub_regeneration_skipped()  # imported the module: hook in place, gradio not yet imported
skip_stub_regeneration()  # again: still one hook
import gradio as gr
stubs = {str(p): p.stat().st_mtime_ns for p in Path(gr.__file__).parent.rglob("*.pyi")}
class Badge(gr.HTML):
    EVENTS = ["click"]
after = {str(p): p.stat().st_mtime_ns for p in Path(gr.__file__).parent.rglob("*.pyi")}
print(json.dumps({
    "skipped": stub_regeneration_skipped(),
    "hooks": sum(type(f).__name__ == "_StubRegenerationOff" for f in sys.meta_path),
    "stubs": len(stubs),
    "stubs_unchanged": stubs == after,
    "badge_has_click": callable(Badge.click),
    "textbox_events": [e.event_name for e in gr.Textbox.EVENTS][:3],
}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["skipped"] is True
    assert result["hooks"] == 1
    assert result["stubs"] > 40 and result["stubs_unchanged"] is True
    assert result["badge_has_click"] is True
    assert result["textbox_events"] == ["change", "input", "select"]


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
