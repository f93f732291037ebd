"""The project's own error type.

Every fault the user can cause (a bad file, a bad option, a missing dataset) is raised as
:class:`AAEError` with a one-line message naming the file or option and what was expected. The CLI
prints it without a traceback and exits with status 2; library users can catch it.
"""


class AAEError(Exception):
    """A user-facing error: bad input, bad option, missing data. The message is one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # force a single line


class NotApplicable(AAEError):
    """A metric that does not apply to a run (no labels, no class head): ``aae evaluate --all``
    skips it with a line; asked for by name, it is an error."""


class DivergenceError(AAEError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived during training; the run was saved and can be resumed."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum
