"""Errors the store raises for things a user can fix; the CLI prints them as one line."""


class StoreError(Exception):
    """Base of every store error caused by the input rather than by a bug."""


class ParamError(StoreError):
    """A hyperparameter value that is malformed or out of range."""


class UnknownRunError(StoreError):
    """A run id that is not in the database."""


class ClaimLostError(StoreError):
    """A worker wrote to a run that it no longer holds: the run was declared lost (or finished)
    while the worker was stopped. The worker drops the run."""


def database_error(exc: BaseException) -> str:
    """One line for an error the database driver raised (sqlalchemy.exc.DBAPIError): its own message
    without the SQL, parameters and link that SQLAlchemy adds, and a full disk called one."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    text = lines[0] if lines else type(orig).__name__
    if "disk is full" in text or "No space left" in text:
        return f"disk full ({text})"
    return text


class TransitionError(StoreError):
    """A change of a run's status that store/status.py's table does not allow (a done run made
    running again, a running one queued)."""


class NoCheckpointError(StoreError):
    """A run that cannot be used (recommend, similar) because it has no checkpoint to load."""
