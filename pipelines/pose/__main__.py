"""Command line: `detect` draws (and exports) the poses in images, `render` draws a saved OpenPose JSON.

python -m pipelines.pose detect IMAGE... [--mode MODE] [--out DIR] [--json] [--models-dir DIR]
                                         [--device auto|cpu|cuda] [--models dwpose|tiny]
python -m pipelines.pose render POSE.json --mode MODE [--width W --height H] --out FILE.png
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from pathlib import Path

from PIL import Image

from pipelines.errors import ModelError, UserError
from pipelines.images import load_image
from pipelines.pose import DrawMode, draw_pose, to_openpose_json
from pipelines.pose.estimator import PoseEstimator
from pipelines.pose.formats import for_editors, read_openpose
from pipelines.pose.models import SOURCES
from pipelines.settings import Settings

MODE_NAMES = [mode.value for mode in DrawMode]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipelines.pose", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    detect = commands.add_parser("detect", help="detect poses and draw them at each image's size")
    detect.add_argument("images", nargs="+", type=Path)
    detect.add_argument("--mode", choices=MODE_NAMES, default=DrawMode.BODY_POSE.value)
    detect.add_argument("--out", type=Path, default=Path("outputs/pose"))
    detect.add_argument("--json", action="store_true", help="also write OpenPose JSON next to each PNG")
    detect.add_argument(
        "--json-for-editors",
        action="store_true",
        help="write the JSON as sd-webui-controlnet and the OpenPose editors load it (confidence 1.0 for "
        "each visible point, which their reader needs to keep it)",
    )
    detect.add_argument("--models-dir", help="folder holding yolox_l.onnx and dw-ll_ucoco_384.onnx")
    detect.add_argument("--device", choices=["auto", "cpu", "cuda"])
    detect.add_argument("--models", choices=list(SOURCES), help="'tiny' is the generated offline stand-in")
    render = commands.add_parser("render", help="draw a saved OpenPose JSON")
    render.add_argument("pose", type=Path)
    render.add_argument("--mode", choices=MODE_NAMES, default=DrawMode.BODY_POSE.value)
    render.add_argument("--width", type=int)
    render.add_argument("--height", type=int)
    render.add_argument("--out", type=Path, required=True)
    return parser


def _unique_stems(paths: list[Path]) -> list[str]:
    """Output names per input: a/pose.jpg and b/pose.png must not overwrite each other's results."""
    seen: Counter[str] = Counter()
    stems = []
    for path in paths:
        seen[path.stem] += 1
        stems.append(path.stem if seen[path.stem] == 1 else f"{path.stem}-{seen[path.stem]}")
    return stems


def _detect(args: argparse.Namespace) -> int:
    settings = Settings.from_env().replace(
        dwpose_dir=args.models_dir, pose_device=args.device, pose_models=args.models
    )
    estimator = PoseEstimator.from_settings(settings)
    if estimator.is_stand_in:
        print("note: tiny stand-in models; the poses are placeholders, not detections", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    failures = 0
    for path, stem in zip(args.images, _unique_stems(args.images), strict=True):
        try:
            image = load_image(path)
            result = estimator.detect(image)
        except ModelError:
            raise  # no image can succeed without the models
        except UserError as error:
            print(f"error: {path}: {error}", file=sys.stderr)
            failures += 1
            continue
        png = args.out / f"{stem}.png"
        Image.fromarray(draw_pose(result, args.mode)).save(png)
        if args.json or args.json_for_editors:
            exported = to_openpose_json(result)
            png.with_suffix(".json").write_text(
                json.dumps(for_editors(exported) if args.json_for_editors else exported)
            )
        count = len(result.people)
        print(f"{path}: {count} {'person' if count == 1 else 'people'} -> {png}")
    return 1 if failures else 0


def _render(args: argparse.Namespace) -> int:
    if (args.width is None) != (args.height is None):
        raise UserError("Give both --width and --height, or neither.")
    size = (args.width, args.height) if args.width is not None else None
    if size and min(size) <= 0:
        raise UserError(f"--width and --height must be positive, got {args.width}x{args.height}.")
    try:  # OpenPose's own files have no canvas size: the requested size stands in for it
        result, notes = read_openpose(args.pose.read_bytes(), canvas=size)
    except OSError as error:
        raise UserError(f"{args.pose}: {error.strerror}") from None
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(draw_pose(result, args.mode, size)).save(args.out)
    print(f"{args.pose} -> {args.out}")
    return 0


COMMANDS = {"detect": _detect, "render": _render}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
