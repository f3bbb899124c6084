"""Load test: N clients × M requests against the app on the tiny preset, started here on 127.0.0.1 only.

    .venv/bin/python -m benchmarks.load --clients 8 --requests 4  # -> benchmarks/results/load_tiny_cpu.json

Each client (its own gradio_client session) sends its requests one after another, alternating /dwpose on a
photo and /generate (1 step, 128×128) on a pose JSON, and downloads every file in the answer. Outcomes:
completed (an answer whose images decode), refused (Gradio's "queue full"), error (anything else, message
kept), lost (no answer within --request-timeout). Latency percentiles are over the completed requests. The
server's RSS is read from /proc after a warm-up (both endpoints once) and again after the run.

Goals (issue 10): 0 lost, 0 errors other than queue-full, RSS after ≤ RSS before + 20 %.
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
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from pathlib import Path

from gradio_client import Client, handle_file
from gradio_client.utils import QueueError
from PIL import Image

from tests.app_helpers import _wait_until_up, free_port, synthetic_photo, write_png

REPO = Path(__file__).resolve().parent.parent
RESULT = REPO / "benchmarks" / "results" / "load_tiny_cpu.json"
POSE = REPO / "assets" / "poses" / "standing.json"
MAX_CLIENTS, MAX_REQUESTS = 32, 20  # bounds on what one run may ask of the machine


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _decodes(path: str) -> None:
    with Image.open(path) as image:
        image.load()


def request(client: Client, index: int, photo: Path) -> None:
    """One request; raises on any failure. Every image in the answer must download and decode."""
    if index % 2 == 0:
        image, pose_json = client.predict(handle_file(str(photo)), "body-pose", api_name="/dwpose")
        _decodes(image)
        assert pose_json["people"], "no person in the answer"
    else:
        gallery, seeds = client.predict(
            handle_file(str(POSE)), "a dancer", "", 1, "Euler a", 1, 5.0, 1.0, index, 128, 128,
            api_name="/generate",
        )  # fmt: skip
        assert seeds == [index] and len(gallery) == 1, (seeds, gallery)
        _decodes(gallery[0]["image"])


def client_run(server: str, client_index: int, requests: int, photo: Path, timeout_s: float) -> list[dict]:
    client = Client(server, verbose=False)
    outcomes = []
    with ThreadPoolExecutor(1) as worker:
        for number in range(requests):
            started = time.perf_counter()
            future = worker.submit(request, client, client_index * requests + number, photo)
            try:
                future.result(timeout=timeout_s)
                outcome = {"outcome": "completed"}
            except FutureTimeout:
                outcome = {"outcome": "lost"}
            except QueueError as error:
                kind = "refused" if "queue is full" in str(error).lower() else "error"
                outcome = {"outcome": kind, "message": str(error)[:200]}
            except Exception as error:  # every other failure is counted, with its message
                outcome = {"outcome": "error", "message": f"{type(error).__name__}: {str(error)[:200]}"}
            outcome["seconds"] = round(time.perf_counter() - started, 3)
            outcomes.append(outcome)
    return outcomes


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return round(statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1], 3)


@contextmanager
def serving(tmp: Path, max_queue_size: int) -> Iterator[tuple[str, int]]:
    """`python app.py --preset tiny` on 127.0.0.1 and a free port, offline; yields (url, pid)."""
    port = free_port()
    env = {
        **os.environ,
        "POSE_STUDIO_CACHE_DIR": str(tmp / "cache"),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_TEMP_DIR": str(tmp / "gradio"),
        "HF_HUB_OFFLINE": "1",
    }
    command = [sys.executable, "app.py", "--preset", "tiny", "--host", "127.0.0.1", "--port", str(port)]
    log_path = tmp / "app.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [*command, "--max-queue-size", str(max_queue_size)], cwd=REPO, env=env, stdout=log, stderr=log
        )
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_until_up(url, process, log_path)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=4, help="per client")
    parser.add_argument("--max-queue-size", type=int, default=4, help="the app's queue bound during the run")
    parser.add_argument("--request-timeout", type=float, default=300, help="seconds before a request is lost")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    if not (1 <= args.clients <= MAX_CLIENTS and 1 <= args.requests <= MAX_REQUESTS):
        parser.error(f"at most {MAX_CLIENTS} clients and {MAX_REQUESTS} requests each")
    with tempfile.TemporaryDirectory() as tmp, serving(Path(tmp), args.max_queue_size) as (server, pid):
        photo = write_png(Path(tmp) / "photo.png", synthetic_photo())
        warm = Client(server, verbose=False)
        request(warm, 0, photo)
        request(warm, 1, photo)
        rss_before = rss_mb(pid)
        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            runs = [
                pool.submit(client_run, server, index, args.requests, photo, args.request_timeout)
                for index in range(args.clients)
            ]
            outcomes = [outcome for run in runs for outcome in run.result()]
        wall_s = time.perf_counter() - started
        time.sleep(2)  # let the last responses' buffers go
        rss_after = rss_mb(pid)
    counts = {
        kind: sum(o["outcome"] == kind for o in outcomes)
        for kind in ("completed", "refused", "error", "lost")
    }
    latencies = sorted(o["seconds"] for o in outcomes if o["outcome"] == "completed")
    report = {
        "clients": args.clients,
        "requests_per_client": args.requests,
        "max_queue_size": args.max_queue_size,
        "concurrency_limit": 1,
        "requests": len(outcomes),
        **counts,
        "errors": sorted({o["message"] for o in outcomes if o["outcome"] == "error"}),
        "latency_p50_s": percentile(latencies, 0.50),
        "latency_p95_s": percentile(latencies, 0.95),
        "wall_s": round(wall_s, 1),
        "server_rss_before_mb": round(rss_before, 1),
        "server_rss_after_mb": round(rss_after, 1),
        "rss_growth_percent": round(100 * (rss_after - rss_before) / rss_before, 1),
        "goals_met": counts["lost"] == 0 and counts["error"] == 0 and rss_after <= rss_before * 1.2,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "loadavg": os.getloadavg()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
