"""Where the two DWPose ONNX files come from, and onnxruntime sessions for them.

Sources: the Hugging Face Hub (huggingface_hub's cache and offline mode), a local folder, or the generated
`tiny` stand-in. Every failure names the file and says how to provide it.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.errors import ModelError, ValidationError
from pipelines.settings import Settings

if TYPE_CHECKING:  # onnxruntime (and onnx, for the stand-ins) load with the first session
    import onnxruntime as ort

logger = logging.getLogger(__name__)

DETECTOR_FILE = "yolox_l.onnx"
POSE_FILE = "dw-ll_ucoco_384.onnx"
MODEL_FILES = (DETECTOR_FILE, POSE_FILE)
CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


def _how_to_provide(settings: Settings) -> str:
    return (
        f"Either run once online so huggingface_hub caches {settings.dwpose_repo} (after that "
        "HF_HUB_OFFLINE=1 works; HF_HUB_CACHE or HF_HOME says where the cache is), or download "
        f"{' and '.join(MODEL_FILES)} from https://huggingface.co/{settings.dwpose_repo} into a folder and "
        "pass --models-dir DIR (or set POSE_STUDIO_DWPOSE_DIR). POSE_STUDIO_POSE_MODELS=tiny is the offline "
        "stand-in."
    )


def _from_folder(settings: Settings) -> dict[str, Path]:
    folder = Path(settings.dwpose_dir).expanduser()
    paths = {name: folder / name for name in MODEL_FILES}
    for name, path in paths.items():
        if not path.is_file():
            raise ModelError(f"{name} is missing from {folder}. {_how_to_provide(settings)}")
    return paths


def _from_hub(settings: Settings) -> dict[str, Path]:
    from huggingface_hub import hf_hub_download

    paths = {}
    for name in MODEL_FILES:
        try:
            paths[name] = Path(hf_hub_download(settings.dwpose_repo, name))
        except Exception as error:  # offline, not cached, network or auth failures all end the same way
            raise ModelError(
                f"Could not get {name} from the Hugging Face repo {settings.dwpose_repo} "
                f"({type(error).__name__}). {_how_to_provide(settings)}"
            ) from error
    return paths


def hub_files(settings: Settings) -> dict[str, tuple[str, ...]]:
    """Hub repo -> the files DWPose reads from it: none from a local folder or for the tiny stand-in."""
    from_hub = settings.pose_models == "dwpose" and not settings.dwpose_dir
    return {settings.dwpose_repo: MODEL_FILES} if from_hub else {}


def _tiny(settings: Settings) -> dict[str, Path]:
    from pipelines.pose.tiny import ensure_tiny_models

    folder = ensure_tiny_models(Path(settings.cache_dir) / "tiny-dwpose", DETECTOR_FILE, POSE_FILE)
    return {name: folder / name for name in MODEL_FILES}


def _dwpose(settings: Settings) -> dict[str, Path]:
    return _from_folder(settings) if settings.dwpose_dir else _from_hub(settings)


# settings.pose_models -> (how to get the files, whether the result is only a stand-in)
SOURCES: dict[str, tuple[Callable[[Settings], dict[str, Path]], bool]] = {
    "dwpose": (_dwpose, False),
    "tiny": (_tiny, True),
}


def _source(settings: Settings) -> tuple[Callable[[Settings], dict[str, Path]], bool]:
    try:
        return SOURCES[settings.pose_models]
    except KeyError:
        raise ValidationError(
            f"Unknown pose models {settings.pose_models!r}; choose one of: {', '.join(SOURCES)}."
        ) from None


def model_files(settings: Settings) -> dict[str, Path]:
    """File name -> local path of both models, fetching or generating them if needed."""
    return _source(settings)[0](settings)


def is_stand_in(settings: Settings) -> bool:
    return _source(settings)[1]


def requested_providers(device: str) -> list[str]:
    """Providers to ask onnxruntime for: CUDA first when asked for (or when auto and available)."""
    if device not in {"auto", "cpu", "cuda"}:
        raise ValidationError(f"Unknown pose device {device!r}; choose auto, cpu or cuda.")
    import onnxruntime as ort

    wants_cuda = device == "cuda" or (device == "auto" and CUDA in ort.get_available_providers())
    return [CUDA, CPU] if wants_cuda else [CPU]


def expected_providers(device: str) -> list[str]:
    """The providers a session for `device` will get, known before any model loads: those requested that
    this onnxruntime build has (PyPI's `onnxruntime` has no CUDA provider; `onnxruntime-gpu` has)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [provider for provider in requested_providers(device) if provider in available]


def signature_mismatch(file_name: str, expected: str, session: ort.InferenceSession) -> ModelError:
    """The error for a file whose inputs and outputs are not the model we need: what was expected, what is."""
    inputs = [node.shape for node in session.get_inputs()]
    outputs = [node.shape for node in session.get_outputs()]
    return ModelError(f"{file_name} is not {expected}, got inputs {inputs} and outputs {outputs}.")


def create_session(path: Path, device: str) -> ort.InferenceSession:
    """An onnxruntime session; a corrupt file is a ModelError naming it, a CPU fallback is a warning."""
    import onnxruntime as ort

    providers = requested_providers(device)
    if CUDA in providers:
        # onnxruntime-gpu: load CUDA and cuDNN from the nvidia wheels torch installed (CPU builds: a no-op).
        ort.preload_dlls()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        with warnings.catch_warnings():  # onnxruntime's own note on a missing provider; we log our own below
            warnings.filterwarnings("ignore", message="Specified provider", category=UserWarning)
            session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as error:  # onnxruntime raises its own Fail/InvalidProtobuf types
        raise ModelError(
            f"{path.name} could not be loaded; the file at {path} is corrupt or not an ONNX model. "
            f"Delete it and download it again. ({str(error).splitlines()[0][:200]})"
        ) from error
    if CUDA in providers and CUDA not in session.get_providers():
        logger.warning("%s: a GPU was asked for but onnxruntime runs it on the CPU.", path.name)
    return session
