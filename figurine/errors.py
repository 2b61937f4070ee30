"""User-facing errors: one clear line and an exit code, never a traceback.

    from figurine.errors import InputError
    raise InputError("photo.jpg: no face found", hint="use a photo where the face is visible")

The CLI catches FigurineError, prints `figurine: error: <message>` (and the hint, if any) on
stderr and exits with the error's code. Anything else is a bug and keeps its traceback.
"""


class FigurineError(Exception):
    """Base class. `exit_code` is what the process returns."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class InputError(FigurineError):
    """Bad photo, bad text, bad arguments: the user can fix it. Exit 2."""

    exit_code = 2


class NeedsInputError(InputError):
    """A re-run must generate a stage again and needs an input given again (the photo, the pose
    reference): the web UI asks for Generate instead. Exit 2."""


class ConfigError(FigurineError):
    """Unknown key, wrong type or bad value in a config file or --set. Exit 2."""

    exit_code = 2


class WeightsError(FigurineError):
    """A model file is missing, truncated or altered. Exit 3."""

    exit_code = 3


class GenerationError(FigurineError):
    """The diffusion stage failed (e.g. out of GPU memory even after offloading). Exit 4."""

    exit_code = 4


class StageError(FigurineError):
    """A stage that runs no model failed unexpectedly (a bug): one line, traceback in the run's error.log. Exit 1."""

    exit_code = 1


class NetworkBlockedError(FigurineError):
    """Something tried to open a network connection while figurine runs offline. Exit 5."""

    exit_code = 5


class WriteError(FigurineError):
    """An output could not be written (disk full, no permission, read-only): nothing half-written
    is left. Exit 6."""

    exit_code = 6


class OutputExistsError(FigurineError):
    """An output file exists and --force was not given. Exit 2."""

    exit_code = 2
