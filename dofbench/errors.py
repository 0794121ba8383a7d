"""One exception type for every user-facing problem: its message is one line that names the
field and what is allowed. The CLI prints it without a traceback and exits non-zero."""


class DofbenchError(Exception):
    """A user-facing error (bad input, missing data, unknown component, ...)."""


class DivergedError(Exception):
    """Training produced a non-finite loss; the trial is recorded with status 'diverged'."""


class ExecutorLost(DofbenchError):
    """The executor can no longer run trials (e.g. a Dask cluster with no workers left): the run
    stores what finished, drops what was in flight and stops, and the same command resumes it."""
