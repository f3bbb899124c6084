"""Frame times while dragging a joint in the pose editor, in Debian's headless Chromium.

    .venv/bin/python -m benchmarks.bench_editor_frames [--moves 240] [--runs 3]
    # -> benchmarks/results/editor_frames_cpu.json

The page is ui/editor.py alone (a Blocks app on 127.0.0.1) with 5 people, hands and face shown: 5 × 128
drawn joints plus their bones. A real mouse (CDP input, as a person's) presses body joint 4 of the middle
person and moves in `--moves` steps; the page records every requestAnimationFrame timestamp from the press
to the release, and how many frames moved the joint. Reported per run: frame-to-frame deltas (median, p95,
max), frames over 1/60 s and over 1/30 s (a dropped frame or two), and long tasks (> 50 ms) the page saw.
The machine, its CPU count and its load average before and after are written with the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

from pipelines.pose import edits
from pipelines.pose.keypoints import PoseResult, from_openpose_json
from pipelines.settings import Settings
from tests.app_helpers import CHROMIUM, CHROMIUM_ARGS, free_port

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "editor_frames_cpu.json"
STANDING = ROOT / "assets" / "poses" / "standing.json"
VIEWPORT = {"width": 1440, "height": 900}
PEOPLE = 5
FRAME_60_MS, FRAME_30_MS = 1000 / 60, 1000 / 30
DRAGGED = ("body", 4)  # the right wrist of the middle person

RECORDER = """() => {
  const editor = document.querySelector('#pose-editor');
  window.__frames = { times: [], moves: 0, longTasks: [], recording: true };
  const circle = () => editor.querySelector('[data-person="2"][data-part="body"][data-index="4"]');
  let last = circle().getAttribute('cy');
  const tick = (time) => {
    if (!window.__frames.recording) return;
    window.__frames.times.push(time);
    const now = circle()?.getAttribute('cy');
    if (now !== last) { window.__frames.moves += 1; last = now; }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) window.__frames.longTasks.push(entry.duration);
  }).observe({ type: 'longtask' });
}"""


def five_people() -> PoseResult:
    """The standing template at 0.4 scale, five abreast."""
    template = from_openpose_json(STANDING.read_bytes())
    small = edits.scale_person(template, 0, 0.4)
    box = edits.person_box(small.people[0])
    people = []
    for index in range(PEOPLE):
        centre = template.width * (index + 0.5) / PEOPLE
        placed = edits.move_person(small, 0, centre - (box[0] + box[2]) / 2, 0)
        people.append(placed.people[0])
    return PoseResult(template.width, template.height, people)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.system()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def one_drag(page, moves: int) -> dict:
    joint = page.locator('#pose-editor [data-person="2"][data-part="body"][data-index="4"]')
    box = joint.bounding_box()
    x, y = round(box["x"] + box["width"] / 2), round(box["y"] + box["height"] / 2)
    page.evaluate(RECORDER)
    page.mouse.move(x, y)
    page.mouse.down()
    started = time.perf_counter()
    for step in range(1, moves + 1):  # out 40 px and back across, while rising in 60 px saw teeth
        page.mouse.move(x + 40 * (1 - math.cos(step / moves * 2 * math.pi)) / 2, y - step % 60)
    page.mouse.up()
    wall_s = time.perf_counter() - started
    page.wait_for_timeout(200)
    frames = page.evaluate("() => { window.__frames.recording = false; return window.__frames; }")
    deltas = [b - a for a, b in zip(frames["times"], frames["times"][1:], strict=False)]
    return {
        "pointer_moves_sent": moves,
        "wall_s": round(wall_s, 3),
        "pointer_moves_per_s": round(moves / wall_s, 1),
        "frames": len(frames["times"]),
        "frames_that_moved_the_joint": frames["moves"],
        "frame_ms_median": round(statistics.median(deltas), 2),
        "frame_ms_p95": round(percentile(deltas, 0.95), 2),
        "frame_ms_max": round(max(deltas), 2),
        "frames_over_16_7_ms": sum(delta > FRAME_60_MS + 1 for delta in deltas),
        "frames_over_33_3_ms": sum(delta > FRAME_30_MS + 1 for delta in deltas),
        "long_tasks_ms": [round(duration, 1) for duration in frames["longTasks"]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=240)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()

    import gradio as gr
    from playwright.sync_api import sync_playwright

    from ui.editor import create_editor

    pose = five_people()
    with gr.Blocks() as demo:
        create_editor(pose, settings=Settings())
    port = free_port()
    load_before = os.getloadavg()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector('#pose-editor [data-person="4"][data-part]')
            drawn = page.locator("#pose-editor [data-part]").count()
            bones = page.locator("#pose-editor .pe-bone").count()
            runs = [one_drag(page, args.moves) for _ in range(args.runs)]
            browser_version = browser.version
            browser.close()
    finally:
        demo.close()
    result = {
        "command": f"python -m benchmarks.bench_editor_frames --moves {args.moves} --runs {args.runs}",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {cpu_model()}",
        "load_average_before": round(load_before[0], 2),
        "load_average_after": round(os.getloadavg()[0], 2),
        "browser": f"Chromium {browser_version}, headless, {' '.join(CHROMIUM_ARGS)}",
        "viewport": VIEWPORT,
        "people": PEOPLE,
        "joints_drawn": drawn,
        "bones_drawn": bones,
        "dragged": f"person 2, {DRAGGED[0]} {DRAGGED[1]}",
        "runs": runs,
        "median_frame_ms": statistics.median(run["frame_ms_median"] for run in runs),
        "worst_p95_frame_ms": max(run["frame_ms_p95"] for run in runs),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
