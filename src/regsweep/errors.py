"""Errors that regsweep raises, each carrying the process exit code the CLI should use.

Exit codes are a contract (design.md): 0 ok, 1 finished with failures or findings,
2 usage or configuration error, 3 refused for safety.
"""

from __future__ import annotations


class RegsweepError(Exception):
    """Base class. ``str(err)`` is a one-line message that says what went wrong and what to do."""

    exit_code: int = 1


class UsageError(RegsweepError):
    """Bad command line, bad STORE, bad configuration file."""

    exit_code = 2


class StoreError(RegsweepError):
    """The storage service failed or refused a request (network, credentials, permissions)."""

    exit_code = 2


class ObjectNotFound(StoreError):
    """The key does not exist in the store."""

    exit_code = 1

    def __init__(self, key: str) -> None:
        super().__init__(f"object not found: {key}")
        self.key = key


class ObjectTooLarge(StoreError):
    """A read hit its ``max_bytes`` cap."""

    exit_code = 1

    def __init__(self, key: str, size: int, max_bytes: int) -> None:
        super().__init__(f"object {key} is {size} bytes, over the cap of {max_bytes}")
        self.key = key
        self.size = size
        self.max_bytes = max_bytes


class LayoutError(UsageError):
    """The store does not hold a Distribution layout where we were told to look."""


class SafetyRefusal(RegsweepError):
    """A safety brake stopped the run before anything was changed."""

    exit_code = 3
