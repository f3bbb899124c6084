"""Command line: generate from a pose file, or prefetch the weights, or run an X/Y sweep.

    python -m pipelines.generation --pose POSE.json|SKELETON.png|PHOTO.jpg --prompt "..." [--samples 2 ...]
    python -m pipelines.generation --from-png OLD.png [--pose POSE] [any flag]   # re-make a PNG's image
    python -m pipelines.generation --download          # fetch the configured preset's weights, then exit
    python -m pipelines.generation sweep ...           # see `python -m pipelines.generation sweep --help`

Every GenerationRequest field is a flag (--num-inference-steps, --draw-mode, --no-thick-lines ...), and
so are the model settings (--preset, --base-model, --device, --dtype, --cpu-offload ...) and the speed levers
(--attention, --compile, --no-fuse-qkv ...).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from pipelines.errors import GenerationError, UserError, unexpected_error_line
from pipelines.generation.engine import GenerationEngine, GenerationRequest, Photo, PoseInput
from pipelines.generation.inputs import is_openpose_skeleton
from pipelines.generation.metadata import Infotext, parse_infotext, read_png_infotext
from pipelines.generation.presets import PRESETS, download_models
from pipelines.generation.request import CONDITIONING_FILE_NAME, POSE_FILE_NAME
from pipelines.generation.sweep import AXES, SWEEP_FILE_NAME, SweepProgress, plan_sweep, run_sweep
from pipelines.images import load_image
from pipelines.pose.draw import CONDITIONING_MODES
from pipelines.pose.formats import read_openpose
from pipelines.pose.keypoints import read_pose_file
from pipelines.settings import Settings, with_preset

# Settings a generation run may override from the command line.
SETTINGS_FLAGS = (
    "preset",
    "base_model",
    "controlnet_model",
    "vae_model",
    "device",
    "dtype",
    "cpu_offload",
    "vae_slicing",
    "vae_tiling",
    "pose_models",
    # speed levers (pipelines/generation/speed.py)
    "attention",
    "channels_last",
    "fuse_qkv",
    "skip_idle_controlnet",
    "sequential_guidance",
    "compile",
    "compile_warmup",
)
ARGUMENT_TYPES = {"str": str, "int": int, "float": float, "int | None": int}
# Flags that take one of a few names: argparse lists them in --help and refuses any other.
FLAG_CHOICES = {"preset": list(PRESETS), "draw_mode": [mode.value for mode in CONDITIONING_MODES]}
POSE_KINDS = ("auto", "json", "skeleton", "photo")


def build_parser(request_defaults: bool = True) -> argparse.ArgumentParser:
    """`request_defaults=False` (with --from-png): request flags default to None, so only the flags given
    override the PNG's parameters."""
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.generation",
        description="Generate SDXL images that follow a pose. First argument `sweep`: an X/Y sweep instead.",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("outputs"), help="folder for the PNGs and result.json"
    )
    parser.add_argument("--download", action="store_true", help="fetch the preset's weights and exit")
    parser.add_argument(
        "--from-png",
        type=Path,
        help="re-make a PNG saved by Pose Studio or AUTOMATIC1111 from its parameters; request flags given "
        f"override them; the pose is --pose, else the {POSE_FILE_NAME} (or {CONDITIONING_FILE_NAME}) saved "
        "beside the PNG",
    )
    add_generation_flags(parser, request_defaults=request_defaults)
    return parser


def add_generation_flags(
    parser: argparse.ArgumentParser, skip: tuple[str, ...] = (), request_defaults: bool = True
) -> None:
    """--pose, --pose-kind, a flag per GenerationRequest field (but `skip`) and the model settings: the one
    flag table of every command that generates (this one and `sweep`)."""
    parser.add_argument("--pose", type=Path, help="OpenPose JSON, a skeleton image, or a photo")
    parser.add_argument("--pose-kind", choices=POSE_KINDS, default="auto", help="how to read --pose")
    request = parser.add_argument_group("request")
    for field in dataclasses.fields(GenerationRequest):
        if field.name not in skip:
            _add_flag(request, field.name, field.type, field.default if request_defaults else None)
    models = parser.add_argument_group("models (default: POSE_STUDIO_* environment, then built-in)")
    settings_fields = {field.name: field for field in dataclasses.fields(Settings)}
    for name in SETTINGS_FLAGS:
        _add_flag(models, name, settings_fields[name].type, None)


def settings_from(args: argparse.Namespace) -> Settings:
    """The environment's settings, then what the preset implies (tiny: the tiny pose models too, as in the
    app), then the model flags that were given."""
    flags = {name: getattr(args, name) for name in SETTINGS_FLAGS}
    return with_preset(Settings.from_env(), args.preset).replace(**flags)


def request_from(args: argparse.Namespace, **fixed: object) -> GenerationRequest:
    """The request the flags describe; `fixed` sets the fields a command has no flag for."""
    fields = dataclasses.fields(GenerationRequest)
    return GenerationRequest(
        **{field.name: getattr(args, field.name) for field in fields if field.name not in fixed}, **fixed
    )


def _add_flag(group: argparse._ArgumentGroup, name: str, type_name: object, default: object) -> None:
    """One flag per field, typed from the dataclass annotation; unset settings flags stay None."""
    flag = "--" + name.replace("_", "-")
    default = None if default is dataclasses.MISSING else default
    if str(type_name) == "bool":
        group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
    elif name in FLAG_CHOICES:
        group.add_argument(flag, choices=FLAG_CHOICES[name], default=default)
    else:
        group.add_argument(flag, type=ARGUMENT_TYPES[str(type_name)], default=default)


def load_pose(path: Path, kind: str, max_pixels: int) -> PoseInput:
    """Read --pose as OpenPose JSON, a skeleton image (used as is) or a photo (DWPose runs on it)."""
    if kind == "json" or (kind == "auto" and path.suffix.lower() == ".json"):
        settings = Settings.from_env()
        pose, notes = read_openpose(read_pose_file(path, settings), settings=settings)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        return pose
    image = load_image(path, max_pixels=max_pixels)
    if kind == "auto":
        kind = "skeleton" if is_openpose_skeleton(image) else "photo"
    return image if kind == "skeleton" else Photo(image)


def build_sweep_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.generation sweep",
        description="Run one request over an X/Y grid of parameter values; writes grid.png, each cell as a "
        "PNG with its parameters, conditioning.png and sweep.json. Every other parameter comes from the "
        "flags; every cell uses the same seed unless seed is an axis.",
    )
    parser.add_argument("--x-axis", required=True, help=f"one of: {', '.join(AXES)}")
    parser.add_argument(
        "--x-values", required=True, help='e.g. "3, 5.5, 7.5", "4-10 (+2)", "1-0 (-0.25)", "1-10 [5]"'
    )
    parser.add_argument("--y-axis", help="a second axis (optional)")
    parser.add_argument("--y-values", default="", help="values of the Y axis")
    parser.add_argument("--out", type=Path, default=Path("outputs/sweep"), help="folder for the results")
    add_generation_flags(parser, skip=("samples",))  # a cell is one image
    return parser


def _print_step(step: int, total: int) -> None:
    print(f"\rstep {step}/{total}", end="\n" if step == total else "", file=sys.stderr, flush=True)


def _print_sweep_progress(report: SweepProgress) -> None:
    last = report.step == report.steps
    print(f"\r{report.describe()}", end="\n" if last else "", file=sys.stderr, flush=True)


def _generate(args: argparse.Namespace, settings: Settings) -> list[str]:
    if args.download:
        return [f"{role}: {folder}" for role, folder in download_models(settings).items()]
    request = _request_from_png(args) if args.from_png else request_from(args)
    pose = load_pose(args.pose, args.pose_kind, settings.max_pixels)
    engine = GenerationEngine.from_settings(settings)
    result = engine.generate(request, pose, progress=_print_step)
    paths = result.save(args.out)
    return [*map(str, paths), json.dumps({"seeds": result.seeds, "timings": result.timings})]


def _request_from_png(args: argparse.Namespace) -> GenerationRequest:
    """The PNG's parameters with the flags given on top; says on stderr what it did not use. Without --pose
    the pose is the conditioning image saved beside the PNG, which re-makes the image pixel for pixel."""
    parsed: Infotext = parse_infotext(read_png_infotext(args.from_png))
    names = [field.name for field in dataclasses.fields(GenerationRequest)]
    request = GenerationRequest(**parsed.request_fields(**{name: getattr(args, name) for name in names}))
    if parsed.ignored:
        print(f"note: not used from the PNG: {', '.join(parsed.ignored)}", file=sys.stderr)
    for note in parsed.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.pose is None:
        beside = [args.from_png.parent / name for name in (POSE_FILE_NAME, CONDITIONING_FILE_NAME)]
        args.pose = next((path for path in beside if path.is_file()), None)
        if args.pose is None:
            raise GenerationError(
                f"the PNG does not carry its pose and there is no {POSE_FILE_NAME} or "
                f"{CONDITIONING_FILE_NAME} beside it: give --pose"
            )
        print(f"note: pose from {args.pose}", file=sys.stderr)
    return request


def _sweep(args: argparse.Namespace, settings: Settings) -> list[str]:
    request = request_from(args, samples=1)
    plan = plan_sweep(request, args.x_axis, args.x_values, args.y_axis, args.y_values, settings=settings)
    pose = load_pose(args.pose, args.pose_kind, settings.max_pixels)
    result = run_sweep(GenerationEngine.from_settings(settings), plan, pose, progress=_print_sweep_progress)
    written = [*map(str, result.save(args.out)), str(args.out / SWEEP_FILE_NAME)]
    if result.error:
        raise GenerationError(
            f"the sweep stopped after {result.done} of {len(plan.cells)} cells, which are saved in "
            f"{args.out}: {result.error}"
        )
    return written


def _run(command: Callable[[argparse.Namespace, Settings], list[str]], args: argparse.Namespace) -> int:
    """Print what the command wrote, or its UserError as one `error:` line with exit code 2."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        lines = command(args, settings_from(args))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # never a traceback: one line that says what happened
        print(f"error: {unexpected_error_line(error)}", file=sys.stderr)
        return 3
    print("\n".join(lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sweep"]:
        parser = build_sweep_parser()
        args = parser.parse_args(argv[1:])
        if bool(args.y_axis) != bool(args.y_values.strip()):
            parser.error("--y-axis and --y-values go together")
        command = _sweep
    else:
        parser = build_parser(request_defaults=not any(arg.startswith("--from-png") for arg in argv))
        args = parser.parse_args(argv)
        command = _generate
    if args.pose is None and not getattr(args, "download", False) and not getattr(args, "from_png", None):
        parser.error("--pose is required" + (" (or --download)" if command is _generate else ""))
    return _run(command, args)


if __name__ == "__main__":
    sys.exit(main())
