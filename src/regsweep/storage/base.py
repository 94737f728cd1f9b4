"""The storage protocol every backend implements, and the records it returns.

Keys are always ``/``-separated strings relative to the store's root (the place that holds
``docker/registry/v2/``). Backends translate them to a filesystem path, an S3 key (with the
bucket prefix) or an Azure blob name. A key never starts with ``/`` at this level, except for
Azure stores written by Distribution 2.x, where blob names themselves begin with ``/``; the Azure
backend exposes those as keys that begin with ``/`` (see storage-layout.md §2.3).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

DEFAULT_CHUNK_SIZE = 1 << 20  # 1 MiB: large enough to keep a hash busy, small in memory


def normalize_prefix(prefix: str) -> str:
    """A ``rootdirectory`` as a key prefix, as Distribution's S3 and Azure drivers build their
    names: ``""``, ``"/"`` -> ``""``; ``"/pfx"``, ``"pfx/"``, ``"/pfx/"`` -> ``"pfx/"``."""
    p = prefix.strip("/")
    return p + "/" if p else ""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One stored object. ``last_modified`` is tz-aware UTC from the storage service's clock."""

    key: str
    size: int
    last_modified: datetime
    etag: str | None = None  # S3 ETag without quotes, Azure ETag, or None on a filesystem
    # The hex MD5 of the content where the service keeps one apart from the ETag (Azure's
    # Content-MD5, which a single Put Blob sets); None elsewhere.
    content_md5: str | None = None


@dataclass(frozen=True, slots=True)
class IncompleteUpload:
    """An S3 multipart upload that was started and never completed (an upload's ``data``)."""

    key: str
    upload_id: str
    initiated: datetime


@dataclass(frozen=True, slots=True)
class DeleteOutcome:
    """What happened to one key of a batched delete. ``error`` is None when the key is gone."""

    key: str
    deleted: bool
    error: str | None = None
    missing: bool = False  # the key did not exist: not an error, but no bytes were freed


@runtime_checkable
class ObjectStore(Protocol):
    """A flat key/value view of one registry storage root.

    Contracts every backend keeps:
    - ``iter_objects(prefix)`` yields every object whose key starts with ``prefix``, exactly once,
      with no delimiter (a flat listing). ``prefix`` should end with ``/`` when it names a
      directory. Order is unspecified. Directory markers (keys ending in ``/``) are skipped.
    - ``iter_subdirs(prefix)`` yields the immediate "subdirectories" of ``prefix`` (which ends
      with ``/``) as full prefixes ending in ``/``; used to shard listings.
    - ``iter_files(prefix)`` yields the objects directly under ``prefix`` (one level, no
      recursion), so files beside the shards are seen too.
    - ``write`` stores ``data`` under ``key`` in one request (links are written this way by
      Distribution, so an S3 ETag is the MD5 of the content) and creates parents as needed.
    - ``iter_incomplete_uploads`` yields S3 multipart uploads under ``prefix``; other backends
      yield nothing (their upload data is a visible object).
    - ``read`` raises ObjectNotFound for a missing key and ObjectTooLarge when the object is
      larger than ``max_bytes``; it never returns a truncated body.
    - ``iter_read`` streams an object of any size in chunks (see its docstring); callers that
      may get a store without it use ``stream_object``, which falls back to ``read``.
    - ``delete_many`` reports an outcome for every key it was given, in order, and never drops
      one silently. Deleting a missing key is an outcome with ``missing=True``.
    - ``move`` copies then deletes; after it returns the source is gone and the target holds
      the same bytes. On the filesystem the mtime is preserved.
    - Service errors (network, credentials, permissions) raise StoreError with a one-line
      message; SDK exceptions never escape a backend.
    """

    url: str  # how the user named this store, for messages

    def iter_objects(self, prefix: str) -> Iterator[ObjectInfo]: ...

    def iter_subdirs(self, prefix: str) -> Iterator[str]: ...

    def iter_files(self, prefix: str) -> Iterator[ObjectInfo]: ...

    def read(self, key: str, *, max_bytes: int) -> bytes: ...

    def iter_read(self, key: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        """Yield the bytes of ``key`` in order, in non-empty chunks of at most ``chunk_size``
        bytes, from one request (one version of the object), so memory stays bounded whatever
        the object's size. Errors surface while iterating, not when this is called: a missing
        key raises ObjectNotFound; a transfer that ends before the object's length raises
        StoreError (a short body is never passed off as the whole object). Close the iterator
        (or exhaust it) to release the connection."""
        ...

    def stat(self, key: str) -> ObjectInfo: ...

    def write(self, key: str, data: bytes) -> ObjectInfo: ...

    def delete_many(self, keys: Sequence[str]) -> list[DeleteOutcome]: ...

    def move(self, key: str, to_key: str) -> None: ...

    def iter_incomplete_uploads(self, prefix: str) -> Iterator[IncompleteUpload]: ...

    def abort_incomplete_upload(self, upload: IncompleteUpload) -> None: ...

    def close(self) -> None: ...


def stream_object(
    store: ObjectStore, key: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> Iterator[bytes]:
    """``store.iter_read(key)``, or for a store without that method (a wrapper written before
    it existed) one ``read`` of the whole object, yielded in ``chunk_size`` slices."""
    iter_read = getattr(store, "iter_read", None)
    if iter_read is not None:
        yield from iter_read(key, chunk_size=chunk_size)
        return
    data = store.read(key, max_bytes=store.stat(key).size)
    view = memoryview(data)
    for start in range(0, len(data), chunk_size):
        yield bytes(view[start : start + chunk_size])
