"""Peak memory and time of one 40 MP photo in the app path (`PoseStudio.show_pose`: decode, detect, cache,
preview) against the pose CLI's path (decode + detect), each in a fresh process on the tiny pose models.

    .venv/bin/python -m benchmarks.bench_app_memory     # writes benchmarks/results/app_memory_cpu.json

Each case runs in its own child process: models loaded and warmed on a small photo first, then the big one;
`extra_peak_mb` is the high-water mark (VmHWM) after the call minus the resident size (VmRSS) just before it.
One copy of the decoded photo is width × height × 3 bytes (`copy_mb`). The goal (issue 10): the app path costs
no more than about one copy above the CLI path.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULT = REPO / "benchmarks" / "results" / "app_memory_cpu.json"
SIDE = 6300  # 39.7 MP, under the 40 MP cap: the case

CHILD = """
import json, resource, sys, time
from pathlib import Path

def status(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB -> MB

from pipelines.images import load_image
from pipelines.settings import Settings
from ui.pose_panel import PoseHandlers
from ui.studio import PoseStudio

case, big, small, cache_dir = sys.argv[1:5]
studio = PoseStudio(Settings(preset="tiny", pose_models="tiny", cache_dir=cache_dir))
run = {
    "app_show_pose": lambda path: PoseHandlers(studio).show(path, "body-pose"),
    "cli_decode_detect": lambda path: studio.pose_estimator.detect(load_image(path)),
}[case]
run(small)  # load and warm the models
before = status("VmRSS")
started = time.perf_counter()
run(big)
seconds = time.perf_counter() - started
print(json.dumps({
    "extra_peak_mb": round(status("VmHWM") - before, 1),
    "rss_before_mb": round(before, 1),
    "rss_after_mb": round(status("VmRSS"), 1),
    "seconds": round(seconds, 2),
    "pose_cache_mb": round(studio.poses.size / 2**20, 1),
}))
"""


def _photo(path: Path, side: int) -> Path:
    """A smooth synthetic photo with a figure (compresses to ~100 KB at 6300², as in the issue)."""
    from tests.app_helpers import synthetic_photo, write_png

    return write_png(path, synthetic_photo(side, side))


def main() -> None:
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        big, small = _photo(Path(tmp) / "big.png", SIDE), _photo(Path(tmp) / "small.png", 640)
        for case in ("cli_decode_detect", "app_show_pose"):
            output = subprocess.run(
                [sys.executable, "-c", CHILD, case, str(big), str(small), str(Path(tmp) / "cache")],
                cwd=REPO,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            results[case] = json.loads(output.strip().splitlines()[-1])
            print(case, results[case], flush=True)
        file_kb = big.stat().st_size / 1024
    copy_mb = SIDE * SIDE * 3 / 2**20
    app, cli = results["app_show_pose"], results["cli_decode_detect"]
    report = {
        "photo": {
            "width": SIDE,
            "height": SIDE,
            "megapixels": round(SIDE * SIDE / 1e6, 1),
            "file_kb": round(file_kb),
        },
        "copy_mb": round(copy_mb, 1),
        "cases": results,
        "app_extra_over_cli_copies": round((app["extra_peak_mb"] - cli["extra_peak_mb"]) / copy_mb, 2),
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
        },
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
