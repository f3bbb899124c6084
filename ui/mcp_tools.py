"""The MCP tools: Gradio's MCP server (on unless POSE_STUDIO_MCP_SERVER=0) exposes the named API endpoints,
each as a tool named after its function and described by its docstring. The page's own events are
`api_visibility="private"`, so they are no tools; the three API endpoints get their tool names and the
descriptions an agent needs here (`as_tool`, applied as each panel wires its endpoint), without changing the
handlers the page shares."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

from pipelines.generation import SCHEDULERS
from pipelines.pose import DrawMode

_MODES = ", ".join(mode.value for mode in DrawMode)
_SCHEDULERS = ", ".join(SCHEDULERS)
_IMAGE = (
    "image: the input: a photo (DWPose finds the people's pose), an OpenPose JSON file, or an OpenPose "
    "skeleton image (used as it is)."
)
_GENERATION_ARGS = f"""    prompt: what the people in the pose should look like, and the scene.
    negative_prompt: what to avoid (empty: nothing).
    scheduler: the sampler, one of: {_SCHEDULERS}.
    num_inference_steps: denoising steps, 1-100 (30 is a good default).
    guidance_scale: how closely to follow the prompt, 1-25 (7.5).
    controlnet_scale: how strictly to follow the pose, 0-1 (1.0).
    seed: the random seed; -1 picks one. Sample k uses seed + k.
    width: output width in pixels (multiple of 8, 64-2048); leave empty with height for the SDXL size
        nearest the pose's aspect ratio.
    height: output height in pixels, given together with width."""

# api_name -> (tool name, docstring in the Args: layout Gradio reads for the tool and its arguments)
TOOLS: dict[str, tuple[str, str]] = {
    "dwpose": (
        "dwpose",
        f"""Find the whole-body pose (body, feet, hands, face) of every person in an image with DWPose, and
draw it on black as a lossless PNG, with the OpenPose JSON of the keypoints.

Args:
    {_IMAGE}
    draw_mode: what to draw, one of: {_MODES} (default body-pose).

Returns:
    The pose image (PNG) and the OpenPose JSON (null for a skeleton image).""",
    ),
    "generate": (
        "generate",
        f"""Generate 1-4 SDXL images of people in the pose of the input (ControlNet OpenPose).

Args:
    {_IMAGE}
{_GENERATION_ARGS}
    samples: how many images, 1-4.

Returns:
    The images (PNG, each captioned with its seed) and the list of seeds used.""",
    ),
    "sweep": (
        "sweep",
        f"""Run one generation over an X/Y grid of parameter values and return the labelled grid, to compare
settings side by side. Every cell is one image; every cell uses the same seed unless seed is an axis.

Args:
    {_IMAGE}
    x_axis: the parameter of the columns: scheduler, num_inference_steps, guidance_scale, controlnet_scale,
        seed, control_guidance_end, or prompt (Prompt S/R).
    x_values: its values: a list "3, 5.5, 7.5", ranges "4-10 (+2)" or "1-10 [5]", scheduler names; for
        prompt, the first value is a word of the prompt and each value replaces it in turn.
    y_axis: the parameter of the rows (optional).
    y_values: its values, as x_values.
{_GENERATION_ARGS}

Returns:
    The grid PNG, the cells captioned with their values, and the sweep's record (axes, values,
    parameters).""",
    ),
}


def _documented(fn: Callable, name: str, doc: str) -> Callable:
    """`fn` under the tool's name and docstring, its arguments documented ones in its signature; a generator
    stays a generator, and the positional part of the signature (where Gradio puts gr.Progress) is kept."""
    if inspect.isgeneratorfunction(fn):

        def wrapper(*args, **kwargs):
            yield from fn(*args, **kwargs)
    else:

        def wrapper(*args, **kwargs):
            return fn(*args, **kwargs)

    functools.update_wrapper(wrapper, fn)
    del wrapper.__wrapped__  # the signature below is the one to read
    signature = inspect.signature(fn)
    present = set(signature.parameters)
    documented = [
        line.strip().split(":", 1)[0]
        for line in doc.split("Args:", 1)[1].split("Returns:", 1)[0].splitlines()
        if line.startswith("    ") and not line.startswith("        ") and ":" in line
    ]
    extra = [
        inspect.Parameter(arg, inspect.Parameter.KEYWORD_ONLY, default=None)
        for arg in documented
        if arg not in present
    ]
    parameters = list(signature.parameters.values())
    variadic = [p for p in parameters if p.kind is inspect.Parameter.VAR_KEYWORD]
    fixed = [p for p in parameters if p.kind is not inspect.Parameter.VAR_KEYWORD]
    wrapper.__signature__ = signature.replace(parameters=[*fixed, *extra, *variadic])
    wrapper.__name__ = wrapper.__qualname__ = name
    wrapper.__doc__ = doc
    return wrapper


def as_tool(api_name: str, fn: Callable) -> Callable:
    """The handler of the endpoint `api_name` under its MCP tool's name and description (a panel wraps its
    endpoint's handler with this as it wires it)."""
    name, doc = TOOLS[api_name]
    return _documented(fn, name, doc)
