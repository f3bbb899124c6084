"""The sweep grid's size: a 4×3 grid of 1024² cells with the pose, as grid.png is written, at the screen
limits of `pipelines.generation.sweep` (GRID_MAX_CELL_PX, GRID_MAX_SIDE_PX) and without them (cells at their
own size, as the grid was drawn before the limits).

    .venv/bin/python -m benchmarks.bench_grid [--out benchmarks/results] [--images DIR]

The cells are deterministic stand-ins for generated pictures: a smooth colour field with fine noise
(sigma 8), which PNG compresses about as badly as a photo. `--images DIR` also writes both grids there.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import time
from pathlib import Path

import numpy as np
import PIL
from PIL import Image

from pipelines.generation.request import GenerationRequest
from pipelines.generation.sweep import GRID_MAX_CELL_PX, GRID_MAX_SIDE_PX, plan_sweep, render_grid
from pipelines.pose import draw_conditioning, from_openpose_json
from pipelines.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
CELL = 1024
X_VALUES, Y_VALUES = "3, 5, 7, 9", "Euler a, DDIM, UniPC"  # guidance scale x scheduler: 4 x 3
VARIANTS = {
    "screen": {},
    "full_size": {"max_cell_px": 1 << 20, "max_side_px": 1 << 20},
}


def photo_like(index: int, size: int = CELL) -> Image.Image:
    rng = np.random.default_rng(index)
    field = Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    smooth = np.asarray(field.resize((size, size), Image.Resampling.BICUBIC), np.float64)
    noisy = smooth + rng.normal(0, 8, (size, size, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def measure(images_dir: Path | None) -> dict[str, object]:
    request = GenerationRequest(prompt="a dancer", width=CELL, height=CELL)
    plan = plan_sweep(request, "guidance_scale", X_VALUES, "scheduler", Y_VALUES, settings=Settings())
    cells = [photo_like(index) for index in range(len(plan.cells))]
    pose = from_openpose_json((ROOT / "assets" / "poses" / "standing.json").read_bytes())
    conditioning = Image.fromarray(draw_conditioning(pose, (CELL, CELL), "full-pose"))
    figures: dict[str, object] = {}
    for name, limits in VARIANTS.items():
        started = time.perf_counter()
        grid = render_grid(plan, cells, conditioning, **limits)
        render_ms = (time.perf_counter() - started) * 1000
        png = io.BytesIO()
        started = time.perf_counter()
        grid.save(png, format="PNG")
        save_ms = (time.perf_counter() - started) * 1000
        if images_dir is not None:
            grid.save(images_dir / f"grid-{name}.png")
        figures[name] = {
            "grid_px": list(grid.size),
            "png_bytes": png.tell(),
            "render_ms": round(render_ms, 1),
            "png_save_ms": round(save_ms, 1),
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--images", type=Path, help="also write the grids into this folder")
    args = parser.parse_args()
    if args.images:
        args.images.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": {
            "cpu": platform.machine(),
            "python": platform.python_version(),
            "pillow": PIL.__version__,
        },
        "grid": f"4x3 cells of {CELL}x{CELL} (guidance scale x scheduler) and the pose thumbnail",
        "limits": {"GRID_MAX_CELL_PX": GRID_MAX_CELL_PX, "GRID_MAX_SIDE_PX": GRID_MAX_SIDE_PX},
        "unit": "pixels, bytes of the PNG (Pillow defaults, as grid.png is saved), ms for one run",
        **measure(args.images),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "grid_cpu.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
