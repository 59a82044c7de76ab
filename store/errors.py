"""Errors the store raises for things a user can fix; the CLI prints them as one line."""


class StoreError(Exception):
    """Base of every store error caused by the input rather than by a bug."""


class ParamError(StoreError):
    """A hyperparameter value that is malformed or out of range."""


class UnknownRunError(StoreError):
    """A run id that is not in the database."""
