"""Errors a person may see. Every failure the user can cause or fix derives from `UserError`, so the UI and
the CLIs show `str(error)` as it is and treat anything else as a bug."""


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
