"""Time to the first page: `python app.py --preset tiny` started fresh, until its URL answers HTTP 200.

    .venv/bin/python -m benchmarks.bench_startup [--runs 5] [--out DIR]    # writes startup_cpu.json

Each run is a new process started as the README says: no POSE_STUDIO_*, GRADIO_* or XDG_* variables (so
Gradio's analytics stay on, its default) and HOME an empty folder, so nothing is warm but the operating
system's file cache; the first run is also reported on its own. Target: median ≤ 2.5 s on the
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
USER_UNSET = ("POSE_STUDIO_", "GRADIO_", "XDG_")  # a new user has none of these
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


def one_start(folder: Path, root: Path) -> dict:
    port = free_port()
    home = folder / "home"
    home.mkdir()
    env = {name: value for name, value in os.environ.items() if not name.startswith(USER_UNSET)}
    env["HOME"] = str(home)
    command = [sys.executable, "app.py", "--preset", "tiny", "--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}/"
    log_path = folder / "app.log"
    with log_path.open("w") as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            while not answers(url):
                if process.poll() is not None or time.perf_counter() - started > GIVE_UP_S:
                    raise RuntimeError(f"the app never answered:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.02)
            seconds = time.perf_counter() - started
            cpu_seconds = process_cpu_s(process.pid)
            preloads = (root / "pipelines" / "preload.py").is_file()  # older checkouts import up front
            background = _wait_for_line(log_path, BACKGROUND_IMPORT_LINE, started) if preloads else None
        finally:
            process.terminate()
            process.wait(timeout=30)
    return {
        "first_page_s": round(seconds, 3),
        "cpu_s_to_first_page": cpu_seconds,
        "background_imports_done_s": background,
    }


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used (Linux /proc): unlike wall time, it barely changes
    when other work shares the machine, so it stands for the start-up time of a quiet machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 3)


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
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to start (e.g. an older one)")
    parser.add_argument("--name", default="startup_cpu", help="the JSON file's name, without .json")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]  # other work on the machine slows every start
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as folder:
            runs.append(one_start(Path(folder), args.root))
    seconds = [run["first_page_s"] for run in runs]
    report = {
        "command": "python app.py --preset tiny (to HTTP 200)",
        "environment": "no POSE_STUDIO_*, GRADIO_* or XDG_* variables; HOME an empty folder",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "load_average_before": load_before,
        "runs": runs,
        "checkout": str(args.root),
        "median_first_page_s": round(statistics.median(seconds), 3),
        "median_cpu_s_to_first_page": round(statistics.median(run["cpu_s_to_first_page"] for run in runs), 3),
        "first_run_s": seconds[0],
        "target_s": TARGET_S,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.name}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
