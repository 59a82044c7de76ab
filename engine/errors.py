"""Errors the engine raises for things a user can fix; the CLI prints them as one line."""


class EngineError(Exception):
    """Base of every error caused by the input rather than by a bug."""


class DataError(EngineError):
    """A dataset that is missing, empty, malformed or fails its checksum."""


class ConfigError(EngineError):
    """A hyperparameter or option that cannot be used."""


class DeviceError(EngineError):
    """A device that was asked for but does not exist here."""


class DivergedError(EngineError):
    """The loss became NaN or infinite."""
