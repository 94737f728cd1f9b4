"""Filesystem backend: the store root is a local directory holding ``docker/registry/v2/``."""

from __future__ import annotations

import errno
import functools
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from regsweep.errors import ObjectNotFound, ObjectTooLarge, StoreError, UsageError
from regsweep.storage.base import (
    DEFAULT_CHUNK_SIZE,
    DeleteOutcome,
    IncompleteUpload,
    ObjectInfo,
)
from regsweep.storage.columns import LISTED_TIME, LISTING_SCHEMA


def _mtime(st: os.stat_result) -> datetime:
    # Truncated to the microsecond exactly (a float division can round up into the next
    # millisecond), so it agrees with list_table's truncation to the millisecond.
    seconds, nanos = divmod(st.st_mtime_ns, 10**9)
    return datetime.fromtimestamp(seconds, tz=UTC) + timedelta(microseconds=nanos // 1000)


# What read() asks for first: links and manifests fit.
_FIRST_READ = 64 * 1024

# Size, mtime ("<seconds>.<10 digits>") and path of every non-directory, each NUL-terminated:
# NUL is the one byte a path cannot hold. GNU find and bfs both understand it.
_FIND_EXPR = ["-ignore_readdir_race", "!", "-type", "d", "-printf", "%s\\0%T@\\0%p\\0"]


# The walkers, best first, as (name, options before the start directories).
_WALKERS = {"bfs": ["-S", "dfs"], "find": []}


@functools.cache
def _walker() -> list[str] | None:
    """The command (before its start directories) that lists a filesystem store: bfs,
    depth-first, when it is installed; else GNU find; else None (BSD and busybox find have no
    ``-printf``), and the store is listed from Python. ``REGSWEEP_FS_WALKER`` (``bfs``,
    ``find`` or ``python``) picks one, and fails if it cannot be used.

    bfs lists the same entries with a third of GNU find's system calls (find's fts dups,
    fcntls and closes a descriptor for every directory, and a store holds about one directory
    per object): a quarter less CPU time for a listing (bench/RESULTS.md). Depth-first, as
    find does: bfs's default breadth-first order was slower than find on the benchmark store."""
    wanted = os.environ.get("REGSWEEP_FS_WALKER", "").strip().lower()
    if wanted == "python":
        return None
    if wanted and wanted not in _WALKERS:
        raise UsageError(f"REGSWEEP_FS_WALKER={wanted}: expected bfs, find or python")
    for name, options in _WALKERS.items():
        if wanted and name != wanted:
            continue
        path = shutil.which(name)
        if path is not None and lists_like_find([path, *options]):
            return [path, *options]
    if wanted:
        # (BSD and busybox find are on PATH as find, but have no -printf.)
        raise UsageError(f"REGSWEEP_FS_WALKER={wanted}: no {wanted} on PATH lists as GNU find does")
    return None


def lists_like_find(cmd: list[str]) -> bool:
    """``cmd`` prints exactly what _find_table reads (an old bfs or a find without
    ``-printf`` does not), tried on this module's own file."""
    probe = os.path.abspath(__file__)
    try:
        size = os.stat(probe).st_size
        out = subprocess.run(
            [*cmd, probe, "-maxdepth", "0", *_FIND_EXPR],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):  # not runnable; or imported from an archive
        return False
    expect = re.compile(rb"\A%d\0\d+\.\d{10}\0%s\0\Z" % (size, re.escape(os.fsencode(probe))))
    return out.returncode == 0 and expect.match(out.stdout) is not None


# Bytes of a walker's output converted at a time. A group of shards prints up to tens of
# megabytes, and its output read whole, then copied and split in Arrow, held about four times
# that at once, twice over with two walkers: the peak of a scan's listing.
_BLOCK = 2 << 20


def _whole_records(data: bytes) -> int:
    """Where the last whole record of ``data`` (which starts with one) ends: after the NUL
    that ends its third field."""
    n = data.count(b"\0")
    if n < 3:
        return 0
    end = data.rfind(b"\0")
    for _ in range(n % 3):
        end = data.rfind(b"\0", 0, end)
    return end + 1


def _find_table(output: bytes | memoryview) -> pa.Table:
    # Split in Arrow: no Python object per field (about twice as fast as bytes.split). The
    # output is wrapped as one binary value, not copied.
    data = pa.py_buffer(output)
    whole = pa.Array.from_buffers(
        pa.large_binary(), 1, [None, pa.array([0, data.size], pa.int64()).buffers()[1], data]
    )
    fields = pc.split_pattern(whole, pattern=b"\0").flatten()
    first = np.arange((len(fields) - 1) // 3, dtype=np.int64) * 3  # the last field is empty

    def text(offset: int) -> pa.Array:
        return fields.take(pa.array(first + offset)).cast(pa.large_string()).cast(pa.string())

    try:
        keys = text(2)
    except pa.ArrowInvalid:  # a name that is not UTF-8: keep it visible (it becomes foreign)
        raw = fields.take(pa.array(first + 2)).to_pylist()
        keys = pa.array([p.decode("utf-8", "backslashreplace") for p in raw], pa.string())
    sizes = text(0).cast(pa.int64())
    # "1732750000.1234567890": whole seconds and the first three fraction digits, exactly.
    stamps = text(1)
    secs = pc.utf8_slice_codeunits(stamps, 0, -11).cast(pa.int64())
    millis = pc.utf8_slice_codeunits(stamps, -10, -7).cast(pa.int64())
    when = pc.add(pc.multiply(secs, 1000), millis).cast(LISTED_TIME)
    none = pa.nulls(len(keys), pa.string())  # no ETag, no Content-MD5
    return pa.Table.from_arrays([keys, sizes, when, none, none], schema=LISTING_SCHEMA)


class FilesystemStore:
    """Keys map to ``root / key``. Empty parent directories are pruned after deletes and moves,
    up to (not including) the root, the way an operator would expect a tidy tree."""

    # Reads are page-cache copies that hold the GIL for most of their time: threads only add
    # contention, so the scan reads a local store from one thread (see scan/scanner.py).
    local = True

    def __init__(self, root: str | os.PathLike[str], url: str | None = None) -> None:
        self.root = Path(root)
        self._base = os.path.join(os.fspath(root), "")
        self.url = url or str(root)
        if not self.root.is_dir():
            raise StoreError(f"{self.url}: not a directory")

    def _path(self, key: str) -> Path:
        return Path(self._file(key))

    def _file(self, key: str) -> str:
        # A plain string join: a scan reads tens of thousands of links and manifests, and a
        # pathlib join cost more than the read itself.
        if key.startswith("/") or ".." in key.split("/"):
            raise StoreError(f"invalid key for a filesystem store: {key!r}")
        return self._base + key

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
        # Plain strings (self._base), not Path objects: a store has about one directory per
        # object (each blob and link sits in its own), so per-directory overhead is most of a
        # listing's cost.
        base = self._base
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

    def list_table(
        self, prefixes: Sequence[str], blocks: Callable[[pa.Table], None] | None = None
    ) -> pa.Table | None:
        """Every object under ``prefixes`` (each a directory, ending in ``/``) as a listing
        table, from one process of a C walker (bfs or GNU find, see _walker): it lists about
        three times faster than os.scandir from Python, and several run side by side on several
        cores. None when neither is installed; the caller then lists with ``iter_objects``.
        With ``blocks``, each block of the walker's output is handed to it as it is converted
        (and an empty table returned): a caller that takes them as they come need not hold a
        whole group's listing (see scan/listing.py); while it waits, so does the walker."""
        walker = _walker()
        if walker is None or any(not p.endswith("/") or p.startswith("-") for p in prefixes):
            return None
        for p in prefixes:
            self._path(p)  # rejects "..", absolute keys
        tables: list[pa.Table] = []
        take = tables.append if blocks is None else blocks
        with subprocess.Popen(
            [*walker, *prefixes, *_FIND_EXPR],
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as proc:
            assert proc.stdout is not None and proc.stderr is not None
            # Its errors read on the side: a walker that fills the error pipe would wait.
            with ThreadPoolExecutor(max_workers=1) as side:
                errors_read = side.submit(proc.stderr.read)
                try:
                    # A block at a time, each converted up to its last whole record.
                    rest = b""
                    while block := proc.stdout.read(_BLOCK):
                        data = rest + block
                        del block
                        end = _whole_records(data)
                        rest = data[end:]
                        table = _find_table(memoryview(data)[:end]) if end else None
                        # The raw output let go before the table is handed on (``take`` waits
                        # while the scan is behind): each walker holding its block twice over
                        # as it converted and waited was the listing's peak, where the
                        # blobs' listing begins.
                        del data
                        if table is not None:
                            take(table)
                        del table
                except BaseException:
                    proc.kill()  # an error while converting: stop the walker
                    raise
                returncode = proc.wait()
                message = errors_read.result()
        if rest and returncode == 0:
            raise StoreError(f"{self.url}: listing failed: its output ended within an entry")
        if returncode != 0:
            # find: "find: 'x/': No such file or directory"; bfs: "bfs: error: x/: No such ...".
            errors = [
                line
                for line in message.decode("utf-8", "replace").splitlines()
                if line.strip() and not line.rstrip(".").endswith("No such file or directory")
            ]
            if errors:  # a shard removed since it was seen is just empty; anything else fails
                if any("Permission denied" in line for line in errors):
                    raise StoreError(f"{self.url}: permission denied reading: {errors[0]}")
                raise StoreError(f"{self.url}: listing failed: {errors[0]}")
        return pa.concat_tables(tables) if tables else _find_table(b"")

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
        try:
            fd = os.open(self._file(key), os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError) as e:
            raise ObjectNotFound(key) from e
        except PermissionError as e:
            raise StoreError(f"{self.url}: permission denied reading {key}") from e
        try:
            # Most objects a scan reads (links, manifests) are small: one read gets all of it
            # and a second, empty one confirms the end. Only a larger object is sized with
            # fstat, then read on (fstat was one system call in five of every read).
            want = min(max_bytes, _FIRST_READ) + 1
            try:
                chunks = [os.read(fd, want)]
            except IsADirectoryError as e:
                raise ObjectNotFound(key) from e
            if len(chunks[0]) < want:
                more = os.read(fd, 1)
                if not more:
                    return chunks[0]  # shorter than want, so within max_bytes
                chunks.append(more)  # it grew since: read on below
            size = os.fstat(fd).st_size
            if size > max_bytes:
                raise ObjectTooLarge(key, size, max_bytes)
            # One byte more than the size, to see a file that grew since fstat.
            left = min(size, max_bytes) + 1 - sum(map(len, chunks))
            while left > 0 and (chunk := os.read(fd, left)):
                chunks.append(chunk)
                left -= len(chunk)
        finally:
            os.close(fd)
        data = b"".join(chunks)
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
