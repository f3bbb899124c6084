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

from pipelines.errors import ModelError, UserError, unexpected_error_line
from pipelines.files import write_text
from pipelines.images import load_image, save_png
from pipelines.pose import DrawMode, draw_pose, to_openpose_json
from pipelines.pose.estimator import PoseEstimator
from pipelines.pose.formats import for_editors, read_openpose
from pipelines.pose.keypoints import read_pose_file
from pipelines.pose.models import SOURCES
from pipelines.settings import ENV_PREFIX, Settings

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


def _detect_one(estimator: PoseEstimator, path: Path, png: Path, args: argparse.Namespace) -> int:
    """Detect, draw and save one image; returns the number of people. The decoded image is released before
    the drawing is made, so at most two image-sized arrays are alive at once."""
    image = load_image(path)
    result = estimator.detect(image)
    del image
    save_png(png, draw_pose(result, args.mode))
    if args.json or args.json_for_editors:
        exported = to_openpose_json(result)
        if args.json_for_editors:
            exported = for_editors(exported)
        write_text(png.with_suffix(".json"), json.dumps(exported))
    return len(result.people)


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
        png = args.out / f"{stem}.png"
        try:
            count = _detect_one(estimator, path, png, args)
        except ModelError:
            raise  # no image can succeed without the models
        except UserError as error:
            message = str(error)
        except Exception as error:  # a bug or out of memory on this file: report it, go on with the next
            message = unexpected_error_line(error)
        else:
            print(f"{path}: {count} {'person' if count == 1 else 'people'} -> {png}")
            continue
        print(f"error: {path}: {message}", file=sys.stderr)
        failures += 1
    return 1 if failures else 0


def _render(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if (args.width is None) != (args.height is None):
        raise UserError("Give both --width and --height, or neither.")
    size = (args.width, args.height) if args.width is not None else None
    if size and min(size) <= 0:
        raise UserError(f"--width and --height must be positive, got {args.width}x{args.height}.")
    if size and size[0] * size[1] > settings.max_pixels:
        raise UserError(
            f"--width x --height is {size[0]}x{size[1]}, above the {settings.max_pixels / 1e6:g} MP limit "
            f"({ENV_PREFIX}MAX_PIXELS)."
        )
    # OpenPose's own files have no canvas size: the requested size stands in for it
    result, notes = read_openpose(read_pose_file(args.pose, settings), canvas=size, settings=settings)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_png(args.out, draw_pose(result, args.mode, size))
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
    except Exception as error:  # never a traceback: one line that says what happened
        print(f"error: {unexpected_error_line(error)}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
