"""A store that cannot change anything: dry runs and audits get one, so by construction they
cannot modify the storage they look at (restic's dry-run backend)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from regsweep.errors import StoreError
from regsweep.storage.base import (
    DEFAULT_CHUNK_SIZE,
    DeleteOutcome,
    IncompleteUpload,
    ObjectInfo,
    ObjectStore,
    stream_object,
)


class ReadOnlyStore:
    """Wraps ``inner``: reads pass through; ``write``, ``delete_many``, ``move`` and
    ``abort_incomplete_upload`` raise StoreError before any request is made."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.url = inner.url
        self.local: bool = getattr(inner, "local", False)

    def _refuse(self, what: str) -> StoreError:
        return StoreError(f"{self.url}: refused to {what}: this store is opened read-only")

    def iter_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        return self.inner.iter_objects(prefix)

    def iter_subdirs(self, prefix: str) -> Iterator[str]:
        return self.inner.iter_subdirs(prefix)

    def list_table(self, prefixes: Sequence[str], **how: Any) -> Any:
        """The inner store's columnar listing, or None where it has none (see columns.py)."""
        fast = getattr(self.inner, "list_table", None)
        return None if fast is None else fast(prefixes, **how)

    def iter_files(self, prefix: str) -> Iterator[ObjectInfo]:
        return self.inner.iter_files(prefix)

    def read(self, key: str, *, max_bytes: int) -> bytes:
        return self.inner.read(key, max_bytes=max_bytes)

    def iter_read(self, key: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        return stream_object(self.inner, key, chunk_size=chunk_size)

    def stat(self, key: str) -> ObjectInfo:
        return self.inner.stat(key)

    def iter_incomplete_uploads(self, prefix: str) -> Iterator[IncompleteUpload]:
        return self.inner.iter_incomplete_uploads(prefix)

    def write(self, key: str, data: bytes) -> ObjectInfo:
        raise self._refuse(f"write {key}")

    def delete_many(self, keys: Sequence[str]) -> list[DeleteOutcome]:
        raise self._refuse(f"delete {len(keys)} object(s)")

    def move(self, key: str, to_key: str) -> None:
        raise self._refuse(f"move {key}")

    def abort_incomplete_upload(self, upload: IncompleteUpload) -> None:
        raise self._refuse(f"abort the upload of {upload.key}")

    def close(self) -> None:
        self.inner.close()
