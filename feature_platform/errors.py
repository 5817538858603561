"""Errors raised by the feature platform; each names what is wrong and where."""

import importlib
from typing import Any


class FeaturePlatformError(Exception):
    """Base class of every error the platform raises on purpose."""


class DefinitionError(FeaturePlatformError, ValueError):
    """A definition (entity, feature, group, view) is invalid."""


class ContractError(FeaturePlatformError, ValueError):
    """A frame breaks a feature group's contract; nothing was written.

    `group`, `column` and `rule` say which group, which column (or None for
    frame-wide rules) and which rule was broken.
    """

    def __init__(self, group: str, column: str | None, rule: str, detail: str) -> None:
        self.group = group
        self.column = column
        self.rule = rule
        where = f"column '{column}'" if column else "frame"
        super().__init__(f"feature group '{group}', {where}: {rule}: {detail}")


class FeatureReferenceError(FeaturePlatformError, LookupError):
    """A feature, group or view reference is unknown or ambiguous."""

    def __str__(self) -> str:  # LookupError would quote the message
        return str(self.args[0]) if self.args else ""


class EntityFrameError(FeaturePlatformError, ValueError):
    """An entity frame (or entity rows) cannot be used for retrieval."""


class ArgumentError(FeaturePlatformError, ValueError):
    """An argument of a call (a time, a table version) is malformed or out of range."""


class StorageError(FeaturePlatformError, OSError):
    """The offline or online store refused a read or write (disk full, permission denied, unreachable).

    Raised after the failed operation: what was stored before is intact and readable.
    """


class ComputeError(FeaturePlatformError):
    """A feature group's compute function raised: the message names the group, the error and where it was raised."""


class SourceError(FeaturePlatformError):
    """A source has no data for days a run needs (or cannot be read): the message names the source, the days and the fix."""


class DefinitionMismatchError(FeaturePlatformError):
    """Definitions differ from the ones applied to the registry (or that wrote the stored data).

    Nothing was read or written; the message names the group or view, the
    difference and the fix (usually `feature-platform plan`, then `apply`).
    """


class RegistryError(FeaturePlatformError):
    """The registry of applied definitions cannot be read, or holds a record that is not valid."""


class RegistryStorageError(RegistryError, StorageError):
    """The registry's storage refused the read (a missing bucket, permissions, a damaged log): both kinds of error."""


class MissingExtraError(ImportError):
    """An optional part of the platform is used but its extra is not installed."""


def import_extra(module: str, extra: str, purpose: str) -> Any:
    """Import `module`, or raise `MissingExtraError` naming the extra that provides it.

    >>> evidently = import_extra("evidently", "drift", "drift monitoring")
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name is None or error.name.split(".")[0] != module.split(".")[0]:
            raise
        raise MissingExtraError(
            f"{purpose} needs '{module}', which is not installed: pip install 'feature-platform[{extra}]'",
            name=module,
        ) from error


class QualityGateError(FeaturePlatformError, ValueError):
    """ERROR rules failed on the rows of a write; nothing was written.

    `group` names the feature group, `blocked` the partitions (None: an unpartitioned group)
    whose rows an ERROR rule refused; the message names each failed rule and its row count.
    """

    def __init__(self, group: str, blocked: tuple[str | None, ...], message: str) -> None:
        self.group = group
        self.blocked = blocked
        super().__init__(message)
