"""Helpers shared by the gc tests: run the CLI in-process, photograph a store, check that every
kept image is still servable the way Distribution serves it, and a store double that "crashes"
after k mutating calls."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from regsweep.cli.main import cli
from regsweep.gc.lock import LOCK_KEY, read_lock
from regsweep.gc.mark import mark
from regsweep.layout.digest import parse_link
from regsweep.layout.keys import (
    blob_data_key,
    layer_link_key,
    revision_link_key,
    tag_current_key,
)
from regsweep.layout.manifest import REF_MANIFEST, REF_SUBJECT, parse_manifest
from regsweep.scan.scanner import scan
from regsweep.scan.snapshot import Snapshot
from regsweep.storage.base import (
    DeleteOutcome,
    IncompleteUpload,
    ObjectInfo,
    ObjectStore,
)
from regsweep.storage.filesystem import FilesystemStore

V2 = "docker/registry/v2/"
EXIT_REFUSED = 3


# -- the command line --------------------------------------------------------------------------


def run_cli(args: Sequence[str], env: Mapping[str, str] | None = None) -> Result:
    """``regsweep ARGS`` in this process (stdin is not a terminal, so --yes is needed)."""
    return CliRunner().invoke(cli, [str(a) for a in args], env=dict(env or {}))


def gc_cli(
    store_url: str, *args: str, env: Mapping[str, str] | None = None, expect: int = 0
) -> dict[str, Any]:
    """``regsweep gc STORE ARGS --json``: assert the exit code and that stdout is exactly one
    JSON object; return it."""
    res = run_cli(["gc", store_url, *args, "--json"], env)
    assert res.exit_code == expect, (res.exit_code, res.stdout[-3000:], res.stderr[-3000:])
    lines = [line for line in res.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, res.stdout
    doc = json.loads(lines[0])
    assert isinstance(doc, dict)
    return doc


def apply_cli(
    plan_file: Path, *args: str, env: Mapping[str, str] | None = None, expect: int = 0
) -> dict[str, Any]:
    res = run_cli(["apply", str(plan_file), "--yes", "--json", *args], env)
    assert res.exit_code == expect, (res.exit_code, res.stdout[-3000:], res.stderr[-3000:])
    if expect != 0:
        return {"stderr": res.stderr}
    doc = json.loads(res.stdout)
    assert isinstance(doc, dict)
    return doc


# -- photographs of a store --------------------------------------------------------------------


def contents(store: ObjectStore, prefix: str = "") -> dict[str, bytes]:
    """Every object under ``prefix``: key -> bytes."""
    return {o.key: store.read(o.key, max_bytes=1 << 30) for o in store.iter_objects(prefix)}


def fs_tree(root: Path, sub: str = "") -> dict[str, tuple[bytes, int]]:
    """Every file under ``root/sub``: relative path -> (bytes, mtime in ns)."""
    out = {}
    base = root / sub if sub else root
    for dirpath, _dirs, files in os.walk(base):
        for name in files:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = (p.read_bytes(), p.stat().st_mtime_ns)
    return out


def fs_dirs(root: Path, sub: str = "docker") -> set[str]:
    return {str(Path(d).relative_to(root)) for d, _, _ in os.walk(root / sub)}


def blob_digests(store: ObjectStore) -> set[str]:
    """Digests of every ``blobs/.../data`` object."""
    out = set()
    for o in store.iter_objects(V2 + "blobs/"):
        parts = o.key.split("/")
        if parts[-1] == "data":
            out.add(f"{parts[-4]}:{parts[-2]}")
    return out


def copy_store(src: ObjectStore, dst: ObjectStore, prefix: str = "") -> None:
    for key, data in contents(src, prefix).items():
        dst.write(key, data)


def copy_fs_root(src: Path, dst: Path) -> None:
    """Copy a filesystem store root, keeping mtimes (as ``cp -a`` does)."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, copy_function=shutil.copy2)


# -- health checks after an apply ------------------------------------------------------------


def bad_links(snap: Snapshot) -> set[str]:
    return {
        a["key"] for a in snap["anomalies"].to_pylist() if a["kind"] in ("bad-link", "bad-manifest")
    }


def assert_no_live_blob_lost(store: ObjectStore, bad_before: set[str] | None = None) -> Snapshot:
    """Re-scan: every manifest that still has a revision link has all its blobs (a mark with
    every revision as a root finds nothing missing), and no bad link or manifest appeared."""
    snap = scan(store)
    missing = mark(snap).missing
    assert missing == [], missing
    new_bad = bad_links(snap) - (bad_before or set())
    assert not new_bad, new_bad
    return snap


def _strict_link(store: ObjectStore, key: str) -> str:
    content = parse_link(store.read(key, max_bytes=4096))
    assert content.problem is None and content.digest, (key, content)
    return content.digest


def assert_pullable(store: ObjectStore, repo: str, tag: str, root: str = V2) -> str:
    """What Distribution needs to serve ``repo:tag`` and everything below it (all platforms):
    a readable ``current/link``, then ``assert_servable``. Returns the tag's digest."""
    digest = _strict_link(store, tag_current_key(repo, tag, root))
    assert_servable(store, repo, digest, root, what=tag)
    return digest


def assert_servable(
    store: ObjectStore, repo: str, digest: str, root: str = V2, what: str = ""
) -> None:
    """What Distribution needs to serve manifest ``digest`` of ``repo`` with everything below
    it: for every manifest a revision link in ``repo`` and its blob; for every config, layer
    and artifact blob a ``_layers`` link in ``repo`` and its data."""
    tag = what or digest
    stack, seen = [digest], set()
    while stack:
        d = stack.pop()
        if d in seen:
            continue
        seen.add(d)
        assert _strict_link(store, revision_link_key(repo, d, root)) == d, (repo, tag, d)
        parsed = parse_manifest(store.read(blob_data_key(d, root), max_bytes=1 << 24))
        assert parsed.problem is None, (repo, tag, d, parsed.problem)
        for ref in parsed.references:
            if ref.kind == REF_SUBJECT:
                continue
            if ref.kind == REF_MANIFEST:
                stack.append(ref.digest)
                continue
            assert _strict_link(store, layer_link_key(repo, ref.digest, root)) == ref.digest, (
                repo,
                tag,
                ref,
            )
            store.stat(blob_data_key(ref.digest, root))


# -- locks -----------------------------------------------------------------------------------


_DEAD_PID: list[int] = []


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    if not _DEAD_PID:
        proc = subprocess.Popen([sys.executable, "-c", "pass"])
        proc.wait()
        _DEAD_PID.append(proc.pid)
    return _DEAD_PID[0]


def orphan_the_lock(store: ObjectStore) -> None:
    """Make the lock left by a crashed run in this process look like a dead process's lock, as
    it would after a real crash (same host, pid gone)."""
    if read_lock(store) is None:
        return  # it crashed before it took the lock
    raw = json.loads(store.read(LOCK_KEY, max_bytes=65536))
    raw["pid"] = dead_pid()
    store.write(LOCK_KEY, json.dumps(raw).encode())


# -- a store that crashes -----------------------------------------------------------------------


class Crash(Exception):
    """The process died: raised by CrashingStore; not a StoreError, so nothing handles it."""


@dataclass
class Op:
    what: str
    key: str

    @property
    def category(self) -> str:
        """What the operation touches: lock, log, or the kind of registry object."""
        if self.key.startswith("regsweep/lock"):
            return "lock"
        if self.key.startswith("regsweep/log/"):
            return "log"
        for part in ("/_manifests/tags/", "/_manifests/revisions/", "/_layers/", "/_uploads/"):
            if part in self.key:
                return part.strip("/")
        return "blob" if "/blobs/" in self.key else "other"


def crash_points(ops: list[Op], stride: int) -> list[int]:
    """Values of k worth crashing at: every ``stride``-th operation, and the operations on
    both sides of each change of category (lock, tags, revisions, links, blobs, uploads,
    log)."""
    ks = set(range(0, len(ops), stride)) | {len(ops) - 1}
    for i in range(1, len(ops)):
        if ops[i].category != ops[i - 1].category:
            ks |= {i - 1, i, i + 1}
    return sorted(k for k in ks if 0 <= k < len(ops))


class CrashingStore:
    """Wraps a store. The first ``after`` mutating calls (write, delete_many, move,
    abort_incomplete_upload) go through; every later one raises Crash, as if the process had
    died (so nothing, not even the lock release or the log flush, reaches the store).
    ``after=None`` never crashes and only counts."""

    def __init__(self, inner: ObjectStore, after: int | None) -> None:
        self.inner = inner
        self.after = after
        self.url = inner.url
        self.ops: list[Op] = []
        self.crashed = False

    def _tick(self, what: str, key: str) -> None:
        if self.after is not None and len(self.ops) >= self.after:
            self.crashed = True
            raise Crash(f"crashed before {what} {key} (after {self.after} operations)")
        self.ops.append(Op(what, key))

    # mutating
    def write(self, key: str, data: bytes) -> ObjectInfo:
        self._tick("write", key)
        return self.inner.write(key, data)

    def delete_many(self, keys: Sequence[str]) -> list[DeleteOutcome]:
        self._tick("delete_many", ",".join(keys))
        return self.inner.delete_many(keys)

    def move(self, key: str, to_key: str) -> None:
        self._tick("move", key)
        self.inner.move(key, to_key)

    def abort_incomplete_upload(self, upload: IncompleteUpload) -> None:
        self._tick("abort", upload.key)
        self.inner.abort_incomplete_upload(upload)

    # reading
    def iter_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        return self.inner.iter_objects(prefix)

    def iter_subdirs(self, prefix: str) -> Iterator[str]:
        return self.inner.iter_subdirs(prefix)

    def iter_files(self, prefix: str) -> Iterator[ObjectInfo]:
        return self.inner.iter_files(prefix)

    def read(self, key: str, *, max_bytes: int) -> bytes:
        return self.inner.read(key, max_bytes=max_bytes)

    def stat(self, key: str) -> ObjectInfo:
        return self.inner.stat(key)

    def iter_incomplete_uploads(self, prefix: str) -> Iterator[IncompleteUpload]:
        return self.inner.iter_incomplete_uploads(prefix)

    def close(self) -> None:
        self.inner.close()


def fs_store(root: Path) -> FilesystemStore:
    root.mkdir(parents=True, exist_ok=True)
    return FilesystemStore(root)
