"""``iter_read``: streaming reads of any size, on every backend (filesystem, moto, Azurite).

The digest scrub hashes blobs of gigabytes through it, so it must keep memory bounded (chunks of
at most ``chunk_size``), return exactly the object's bytes, and fail loudly rather than yield a
short body.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any

import pytest

from regsweep.errors import ObjectNotFound, StoreError
from regsweep.storage.base import ObjectInfo, ObjectStore, stream_object
from regsweep.storage.readonly import ReadOnlyStore

KEY = "docker/registry/v2/blobs/sha256/ab/abcdef/data"


@pytest.mark.parametrize("size", [0, 1, 1000, 5 * 1024 * 1024 + 3])
def test_iter_read_returns_exact_bytes_in_bounded_chunks(store: ObjectStore, size: int) -> None:
    data = os.urandom(size)
    store.write(KEY, data)
    chunk_size = 256 * 1024
    chunks = list(store.iter_read(KEY, chunk_size=chunk_size))
    assert b"".join(chunks) == data
    assert all(0 < len(c) <= chunk_size for c in chunks)
    assert hashlib.sha256(b"".join(chunks)).digest() == hashlib.sha256(data).digest()


def test_iter_read_missing_key_raises_object_not_found(store: ObjectStore) -> None:
    it = store.iter_read("docker/registry/v2/blobs/sha256/00/00/data")
    with pytest.raises(ObjectNotFound):
        next(it)


def test_iter_read_can_stop_early(store: ObjectStore) -> None:
    data = os.urandom(3 * 65536)
    store.write(KEY, data)
    it = store.iter_read(KEY, chunk_size=65536)
    assert next(it) == data[:65536]
    it.close()  # type: ignore[attr-defined]  # releases the connection or file
    # The store is still usable afterwards (no connection left half-read).
    assert b"".join(store.iter_read(KEY)) == data


def test_read_only_store_streams_through(store: ObjectStore) -> None:
    data = os.urandom(70_000)
    store.write(KEY, data)
    ro = ReadOnlyStore(store)
    assert b"".join(ro.iter_read(KEY, chunk_size=4096)) == data
    assert b"".join(stream_object(ro, KEY, chunk_size=4096)) == data


class _NoStreaming:
    """A wrapper written before ``iter_read`` existed: ``stream_object`` falls back to ``read``."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.url = inner.url

    def read(self, key: str, *, max_bytes: int) -> bytes:
        return self.inner.read(key, max_bytes=max_bytes)

    def stat(self, key: str) -> ObjectInfo:
        return self.inner.stat(key)

    def __getattr__(self, name: str) -> Any:
        if name == "iter_read":
            raise AttributeError(name)
        return getattr(self.inner, name)


def test_stream_object_falls_back_to_read(store: ObjectStore) -> None:
    data = os.urandom(10_000)
    store.write(KEY, data)
    legacy: Any = _NoStreaming(store)
    chunks = list(stream_object(legacy, KEY, chunk_size=3000))
    assert b"".join(chunks) == data
    assert [len(c) for c in chunks] == [3000, 3000, 3000, 1000]
    assert b"".join(ReadOnlyStore(legacy).iter_read(KEY, chunk_size=3000)) == data


def test_iter_read_reports_a_short_body_as_an_error(store_factory: Any) -> None:
    """A transfer cut short (the server sends fewer bytes than Content-Length) is an error,
    never a short object: simulated on S3 by a body that ends early."""
    s3 = store_factory("s3")
    data = os.urandom(100_000)
    s3.write(KEY, data)
    real_get = s3.client.get_object

    def truncated_get(**kw: Any) -> Any:
        r = real_get(**kw)
        body = r["Body"]
        real_read = body._raw_stream.read
        sent = [0]

        def read(amt: int | None = None) -> bytes:
            if sent[0] >= 50_000:
                return b""
            chunk: bytes = real_read(amt)
            sent[0] += len(chunk)
            return chunk

        body._raw_stream.read = read
        return r

    s3.client.get_object = truncated_get
    got: Iterator[bytes] = s3.iter_read(KEY, chunk_size=10_000)
    with pytest.raises(StoreError):
        b"".join(got)
