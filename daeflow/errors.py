"""The errors a user may see; the CLI turns each into one line on stderr."""


class DaeflowError(Exception):
    """Base class: a problem the user can fix, explained in one line."""

    exit_code = 2


class UsageError(DaeflowError):
    """An option value that cannot be used."""


class DataError(DaeflowError):
    """Input data that is missing, unreadable or unsuitable."""


class PluginError(DaeflowError):
    """A plugin that failed to load or declares something invalid."""


class ArchitectureError(DaeflowError):
    """An unknown, duplicated or misbehaving architecture."""


class ModelLoadError(DaeflowError):
    """A saved model that cannot be loaded."""


class Interrupted(DaeflowError):
    """Training stopped by a signal."""

    exit_code = 130
