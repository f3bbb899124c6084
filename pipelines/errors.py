"""Errors a person may see. Every failure the user can cause or fix derives from `UserError`, so the UI and
the CLIs show `str(error)` as it is and treat anything else as a bug."""

import math


class UserError(Exception):
    """A failure with a message written for the person using the app."""


class ImageError(UserError):
    """The uploaded file is not an image we can use (corrupt, truncated, too large, unknown format)."""


class ModelError(UserError):
    """Model weights are missing, corrupt or do not have the expected inputs and outputs."""


class ValidationError(UserError):
    """A request parameter is out of range or malformed."""


class NoPersonError(UserError):
    """A step needs a pose but the image has no person in it."""


class GenerationError(UserError):
    """Generation failed in a way the user should hear about (NaN output, out of memory)."""


class Cancelled(UserError):
    """The user cancelled the run; nothing was decoded."""


# The forms "out of memory" takes, as (exception class name anywhere in its MRO, text its message contains,
# lower case; "" = any, which memory ran out). Class names, so this module imports neither torch nor
# onnxruntime; torch.cuda.OutOfMemoryError is torch.OutOfMemoryError.
OUT_OF_MEMORY_FORMS: tuple[tuple[str, str, str], ...] = (
    ("OutOfMemoryError", "", "GPU"),  # torch: "CUDA out of memory. Tried to allocate ..."
    ("RuntimeError", "out of memory", "GPU"),  # older CUDA paths: "CUDA error: out of memory"; MPS
    ("RuntimeError", "alloc_failed", "GPU"),  # cuBLAS / cuDNN: "CUBLAS_STATUS_ALLOC_FAILED"
    ("Fail", "allocate", "GPU"),  # onnxruntime: "Failed to allocate memory for requested buffer ..."
    ("RuntimeException", "allocate", "GPU"),
    ("MemoryError", "", "system"),  # Python and NumPy: host RAM
)


def out_of_memory_kind(error: BaseException) -> str | None:
    """Which memory `error` says ran out ("GPU" or "system"), or None when it is no out-of-memory error."""
    names = {cls.__name__ for cls in type(error).__mro__}
    text = str(error).lower()
    forms = OUT_OF_MEMORY_FORMS
    return next((kind for name, needle, kind in forms if name in names and needle in text), None)


def unexpected_error_line(error: BaseException) -> str:
    """One line for a failure that is not a UserError (a bug): what it was, for a bug report, no traceback."""
    if isinstance(error, OSError) and error.strerror:  # the file system, not a bug: which file, and why
        where = f" {error.filename}" if error.filename else ""
        return f"could not use{where}: {error.strerror}"
    kind = out_of_memory_kind(error)
    detail = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:300]}"
    if kind is not None:
        return f"ran out of {kind} memory ({detail})"
    return f"internal error, please report it ({detail})"


def shown(value: object) -> str:
    """A value for a message: huge integers by their size (their repr may be refused or fill a screen)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of about 10^{int(value.bit_length() * math.log10(2))}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
