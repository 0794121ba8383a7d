"""One exception type for every user-facing problem: its message is one line that names the
field and what is allowed. The CLI prints it without a traceback and exits non-zero."""


class DofbenchError(Exception):
    """A user-facing error (bad input, missing data, unknown component, ...)."""


class DivergedError(Exception):
    """Training produced a non-finite loss; the trial is recorded with status 'diverged'."""
