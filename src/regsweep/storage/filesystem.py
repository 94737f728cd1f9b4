"""Filesystem backend: the store root is a local directory holding ``docker/registry/v2/``."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from regsweep.errors import ObjectNotFound, ObjectTooLarge, StoreError
from regsweep.storage.base import (
    DEFAULT_CHUNK_SIZE,
    DeleteOutcome,
    IncompleteUpload,
    ObjectInfo,
)


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=UTC)


class FilesystemStore:
    """Keys map to ``root / key``. Empty parent directories are pruned after deletes and moves,
    up to (not including) the root, the way an operator would expect a tidy tree."""

    def __init__(self, root: str | os.PathLike[str], url: str | None = None) -> None:
        self.root = Path(root)
        self.url = url or str(root)
        if not self.root.is_dir():
            raise StoreError(f"{self.url}: not a directory")

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise StoreError(f"invalid key for a filesystem store: {key!r}")
        return self.root / key

    def _info(self, key: str, st: os.stat_result) -> ObjectInfo:
        return ObjectInfo(key=key, size=st.st_size, last_modified=_mtime(st), etag=None)

    def iter_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        # A prefix that ends in "/" is a directory; otherwise list its parent and filter by name,
        # so the contract "every key starting with prefix" holds for partial names too.
        if prefix.endswith("/") or prefix == "":
            start, name_filter = prefix, None
        else:
            start, _, name_filter = prefix.rpartition("/")
            start = start + "/" if start else ""
        # Plain strings, not Path objects: a store has about one directory per object (each blob
        # and link sits in its own), so per-directory overhead is most of a listing's cost.
        base = os.path.join(os.fspath(self.root), "")
        stack = [start]
        first = True
        while stack:
            rel = stack.pop()
            try:
                it = os.scandir(base + rel)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except PermissionError as e:
                raise StoreError(f"{self.url}: permission denied reading {e.filename}") from e
            with it:
                for entry in it:
                    if first and name_filter is not None and not entry.name.startswith(name_filter):
                        continue
                    key = rel + entry.name
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(key + "/")
                        else:
                            st = entry.stat(follow_symlinks=False)
                            yield ObjectInfo(key, st.st_size, _mtime(st), None)
                    except FileNotFoundError:
                        continue  # removed while we listed
            first = False

    def iter_subdirs(self, prefix: str) -> Iterator[str]:
        try:
            with os.scandir(self._path(prefix) if prefix else self.root) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        yield prefix + entry.name + "/"
        except (FileNotFoundError, NotADirectoryError):
            return
        except PermissionError as e:
            raise StoreError(f"{self.url}: permission denied reading {e.filename}") from e

    def iter_files(self, prefix: str) -> Iterator[ObjectInfo]:
        try:
            with os.scandir(self._path(prefix) if prefix else self.root) as it:
                for entry in it:
                    if not entry.is_dir(follow_symlinks=False):
                        yield self._info(prefix + entry.name, entry.stat(follow_symlinks=False))
        except (FileNotFoundError, NotADirectoryError):
            return
        except PermissionError as e:
            raise StoreError(f"{self.url}: permission denied reading {e.filename}") from e

    def read(self, key: str, *, max_bytes: int) -> bytes:
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size > max_bytes:
                    raise ObjectTooLarge(key, size, max_bytes)
                data = f.read(max_bytes + 1)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as e:
            raise ObjectNotFound(key) from e
        except PermissionError as e:
            raise StoreError(f"{self.url}: permission denied reading {key}") from e
        if len(data) > max_bytes:
            raise ObjectTooLarge(key, len(data), max_bytes)
        return data

    def iter_read(self, key: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        path = self._path(key)
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed in the finally below
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as e:
            raise ObjectNotFound(key) from e
        except PermissionError as e:
            raise StoreError(f"{self.url}: permission denied reading {key}") from e
        try:
            while chunk := f.read(chunk_size):
                yield chunk
        except OSError as e:
            raise StoreError(f"{self.url}: cannot read {key}: {e.strerror}") from e
        finally:
            f.close()

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError) as e:
            raise ObjectNotFound(key) from e
        except PermissionError as e:
            raise StoreError(f"{self.url}: permission denied on {key}") from e
        if not path.is_file():
            raise ObjectNotFound(key)
        return self._info(key, st)

    def write(self, key: str, data: bytes) -> ObjectInfo:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename, so a crash never leaves a truncated link (distribution#4478).
            tmp = path.with_name(f".{path.name}.regsweep-tmp")
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            return self._info(key, path.stat())
        except PermissionError as e:
            raise StoreError(f"{self.url}: permission denied writing {key}") from e
        except OSError as e:
            raise StoreError(f"{self.url}: cannot write {key}: {e.strerror}") from e

    def _prune_parents(self, path: Path) -> None:
        parent = path.parent
        while parent != self.root and self.root in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                return
            parent = parent.parent

    def delete_many(self, keys: Sequence[str]) -> list[DeleteOutcome]:
        out: list[DeleteOutcome] = []
        for key in keys:
            try:
                path = self._path(key)
                path.unlink()
            except FileNotFoundError:
                out.append(DeleteOutcome(key, deleted=False, missing=True))
                continue
            except (OSError, StoreError) as e:
                out.append(DeleteOutcome(key, deleted=False, error=str(e)))
                continue
            self._prune_parents(path)
            out.append(DeleteOutcome(key, deleted=True))
        return out

    def move(self, key: str, to_key: str) -> None:
        src, dst = self._path(key), self._path(to_key)
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(src, dst)  # keeps the mtime, as Distribution's own Move does
            except OSError as e:
                if e.errno != errno.EXDEV:
                    raise
                shutil.copy2(src, dst)
                src.unlink()
        except FileNotFoundError as e:
            raise ObjectNotFound(key) from e
        except PermissionError as e:
            raise StoreError(f"{self.url}: permission denied moving {key}") from e
        self._prune_parents(src)

    def iter_incomplete_uploads(self, prefix: str) -> Iterator[IncompleteUpload]:
        return iter(())

    def abort_incomplete_upload(self, upload: IncompleteUpload) -> None:
        raise StoreError("a filesystem store has no multipart uploads")

    def set_mtime(self, key: str, when: datetime) -> None:
        """Back-date an object (used by the demo generator and tests, never by gc)."""
        ts = when.timestamp()
        os.utime(self._path(key), (ts, ts))

    def close(self) -> None:
        pass
