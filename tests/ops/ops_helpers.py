"""Helpers shared by the operations tests (imported by name; fixtures are in conftest.py)."""

from __future__ import annotations

from collections.abc import Sequence

from regsweep.storage.base import DeleteOutcome, ObjectInfo, ObjectStore
from regsweep.storage.readonly import ReadOnlyStore


class Recording(ReadOnlyStore):
    """A read-only store that records every attempt to change it (and refuses it)."""

    def __init__(self, inner: ObjectStore) -> None:
        super().__init__(inner)
        self.attempts: list[str] = []

    def write(self, key: str, data: bytes) -> ObjectInfo:
        self.attempts.append(f"write {key}")
        return super().write(key, data)

    def delete_many(self, keys: Sequence[str]) -> list[DeleteOutcome]:
        self.attempts.append(f"delete {list(keys)}")
        return super().delete_many(keys)

    def move(self, key: str, to_key: str) -> None:
        self.attempts.append(f"move {key}")
        super().move(key, to_key)
