"""Time to the first page: `python app.py --preset tiny` started fresh, until its URL answers HTTP 200.

    .venv/bin/python -m benchmarks.bench_startup [--runs 5] [--out DIR]    # writes startup_cpu.json

Each run is a new process (offline, its own cache and temp folders, analytics off), so nothing is warm but
the operating system's file cache; the first run is also reported on its own. Target: median ≤ 2.5 s on the
2-core dev VM. The log of each run says when the model libraries finished importing in the background.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 2.5
GIVE_UP_S = 120.0
BACKGROUND_IMPORT_LINE = "Model libraries imported in the background"


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def one_start(folder: Path) -> dict:
    port = free_port()
    env = {
        **os.environ,
        "POSE_STUDIO_CACHE_DIR": str(folder / "cache"),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_TEMP_DIR": str(folder / "gradio"),
        "HF_HUB_OFFLINE": "1",
    }
    command = [sys.executable, "app.py", "--preset", "tiny", "--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}/"
    log_path = folder / "app.log"
    with log_path.open("w") as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            while not answers(url):
                if process.poll() is not None or time.perf_counter() - started > GIVE_UP_S:
                    raise RuntimeError(f"the app never answered:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.02)
            seconds = time.perf_counter() - started
            background = _wait_for_line(log_path, BACKGROUND_IMPORT_LINE, started)
        finally:
            process.terminate()
            process.wait(timeout=30)
    return {"first_page_s": round(seconds, 3), "background_imports_done_s": background}


def _wait_for_line(path: Path, line: str, started: float, limit: float = 60.0) -> float | None:
    """Seconds from start until `line` appears in the log (the background imports finished), or None."""
    while time.perf_counter() - started < limit:
        if line in path.read_text():
            return round(time.perf_counter() - started, 3)
        time.sleep(0.05)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]  # other work on the machine slows every start
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as folder:
            runs.append(one_start(Path(folder)))
    seconds = [run["first_page_s"] for run in runs]
    report = {
        "command": "python app.py --preset tiny (to HTTP 200)",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "load_average_before": load_before,
        "runs": runs,
        "median_first_page_s": round(statistics.median(seconds), 3),
        "first_run_s": seconds[0],
        "target_s": TARGET_S,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "startup_cpu.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
