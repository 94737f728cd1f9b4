"""The digest scrub: read blob data and check it hashes to the digest it is stored under.

Blobs are streamed (``ObjectStore.iter_read``) through ``hashlib`` of the digest's algorithm on an
Executor, so a thread pool serves one machine and a cluster engine's executor a cluster. The
work can be bounded: ``sample`` checks a deterministic fraction of the blobs, chosen by digest
(the same blobs on every run), and ``max_bytes`` stops scheduling once that many bytes are
planned, in digest order, so successive runs with a checkpoint walk through the whole store.

The checkpoint is a JSON-lines file: one header line naming the store, then one line per
finished blob (its digest, listed size and verdict), appended and flushed as each finishes. A
re-run with the same file skips those blobs and reports their verdicts again, so an interrupted
scrub resumes where it stopped without re-reading anything it finished.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from regsweep.audit.findings import ERROR, Finding
from regsweep.errors import ObjectNotFound, StoreError, UsageError
from regsweep.storage.base import DEFAULT_CHUNK_SIZE, ObjectStore, stream_object

CHECKPOINT_FORMAT = "regsweep-scrub-checkpoint/1"
_HASHES = {"sha256", "sha384", "sha512"}
_TICK_SECONDS = 0.5


@dataclass(frozen=True)
class ScrubOptions:
    """``sample``: fraction of blobs to check (1.0 = all), chosen by digest. ``max_bytes``: stop
    scheduling blobs once this many bytes are planned (None = no limit). ``checkpoint``: JSONL
    file to resume from and append to."""

    sample: float = 1.0
    max_bytes: int | None = None
    checkpoint: Path | None = None
    workers: int = 8
    chunk_size: int = DEFAULT_CHUNK_SIZE

    def __post_init__(self) -> None:
        if not 0.0 <= self.sample <= 1.0:
            raise UsageError(f"--sample must be between 0 and 1, not {self.sample}")
        if self.max_bytes is not None and self.max_bytes < 0:
            raise UsageError("--max-bytes must not be negative")
        if self.workers < 1:
            raise UsageError("the scrub needs at least one worker")


@dataclass(frozen=True, slots=True)
class BlobToCheck:
    digest: str
    key: str
    size: int


@dataclass(frozen=True, slots=True)
class ScrubStatus:
    """Progress, reported from the calling thread after each blob and about twice a second
    while blobs are being read."""

    blobs_done: int
    blobs_total: int
    bytes_done: int
    bytes_total: int
    elapsed: float  # seconds since the scrub started

    @property
    def bytes_per_second(self) -> float:
        return self.bytes_done / self.elapsed if self.elapsed > 0 else 0.0


ScrubProgress = Callable[[ScrubStatus], None]


def _no_status(status: ScrubStatus) -> None:
    pass


@dataclass(frozen=True, slots=True)
class Verdict:
    """The result of reading one blob. ``status``: ok | digest-mismatch | size-changed |
    unreadable | vanished | unsupported."""

    digest: str
    key: str
    size: int  # listed size
    status: str
    bytes_read: int = 0
    actual: str | None = None  # what the data hashes to
    detail: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "key": self.key,
            "size": self.size,
            "status": self.status,
            "bytes_read": self.bytes_read,
            "actual": self.actual,
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Verdict:
        return cls(
            digest=str(d["digest"]),
            key=str(d["key"]),
            size=int(d["size"]),
            status=str(d["status"]),
            bytes_read=int(d.get("bytes_read") or 0),
            actual=d.get("actual"),
            detail=d.get("detail"),
        )


# Verdicts that are final: written to the checkpoint and never re-read on resume. A read error
# or a blob that vanished is tried again next time.
_FINAL = {"ok", "digest-mismatch", "size-changed", "unsupported"}


@dataclass
class ScrubResult:
    planned: int = 0  # blobs chosen for this run (sampled, within budget, not yet done)
    checked: int = 0  # blobs read in this run
    bytes_read: int = 0
    resumed: int = 0  # verdicts taken from the checkpoint
    not_sampled: int = 0
    deferred: int = 0  # over the --max-bytes budget: left for a later run
    deferred_bytes: int = 0
    elapsed: float = 0.0
    verdicts: list[Verdict] = field(default_factory=list)  # this run's and the checkpoint's

    @property
    def bytes_per_second(self) -> float:
        return self.bytes_read / self.elapsed if self.elapsed > 0 else 0.0

    def findings(self, repos_of: dict[str, list[str]] | None = None) -> list[Finding]:
        repos_of = repos_of or {}
        out: list[Finding] = []
        for v in self.verdicts:
            repos = repos_of.get(v.digest, [])
            repo = repos[0] if repos else None
            if v.status == "digest-mismatch":
                size_note = (
                    f" ({v.bytes_read} bytes read; the listing says {v.size})"
                    if v.bytes_read != v.size
                    else f" ({v.bytes_read} bytes)"
                )
                out.append(
                    Finding(
                        ERROR,
                        "digest-mismatch",
                        repo,
                        v.key,
                        f"blob data stored as {v.digest} hashes to {v.actual}{size_note}: its "
                        "content is corrupt, and every image that uses it fails verification",
                        "restore the blob from a backup, or delete it and push every image "
                        "that uses it again",
                        digest=v.digest,
                        size=v.size,
                    )
                )
            elif v.status == "size-changed":
                out.append(
                    Finding(
                        ERROR,
                        "size-mismatch",
                        repo,
                        v.key,
                        f"blob {v.digest}: {v.bytes_read} bytes were read, but the listing said "
                        f"{v.size}: blob data must never change once written",
                        "find what rewrites blob data; restore the blob from a backup",
                        digest=v.digest,
                        size=v.size,
                    )
                )
            elif v.status == "unreadable":
                out.append(
                    Finding(
                        ERROR,
                        "unreadable-blob",
                        repo,
                        v.key,
                        f"blob {v.digest} could not be read: {v.detail}",
                        "check the store's health and permissions, then run the scrub again "
                        "(with --checkpoint it reads only what it has not finished)",
                        digest=v.digest,
                        size=v.size,
                    )
                )
        return out

    def to_json(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for v in self.verdicts:
            counts[v.status] = counts.get(v.status, 0) + 1
        return {
            "planned": self.planned,
            "checked": self.checked,
            "bytes_read": self.bytes_read,
            "resumed_from_checkpoint": self.resumed,
            "not_sampled": self.not_sampled,
            "deferred": self.deferred,
            "deferred_bytes": self.deferred_bytes,
            "elapsed_seconds": round(self.elapsed, 3),
            "bytes_per_second": round(self.bytes_per_second),
            "verdicts": counts,
        }


def in_sample(digest: str, fraction: float) -> bool:
    """Deterministic sampling by digest: the hex of a content digest is uniformly distributed,
    so its first 64 bits, read as a fraction of 2**64, decide. Same digest, same answer."""
    if fraction >= 1.0:
        return True
    if fraction <= 0.0:
        return False
    hex_ = digest.partition(":")[2][:16]
    try:
        value = int(hex_, 16) / float(1 << (4 * len(hex_)))
    except ValueError:
        return True
    return value < fraction


class Checkpoint:
    """The JSON-lines checkpoint file. ``done`` holds the final verdicts already in it."""

    def __init__(self, path: Path, store_url: str) -> None:
        self.path = path
        self.store_url = store_url
        self.done: dict[str, Verdict] = {}
        self._file: IO[str] | None = None
        self._lock = threading.Lock()
        if path.exists():
            self._load()

    def _load(self) -> None:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise UsageError(f"cannot read checkpoint {self.path}: {e.strerror}") from e
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except ValueError:
                if n == len(lines):
                    continue  # the last line of an interrupted write: ignore it
                raise UsageError(f"{self.path}:{n}: not a scrub checkpoint line") from None
            if "format" in d:
                if d.get("format") != CHECKPOINT_FORMAT:
                    raise UsageError(f"{self.path}: not a regsweep scrub checkpoint")
                if d.get("store") != self.store_url:
                    raise UsageError(
                        f"{self.path} is the checkpoint of {d.get('store')}, not of "
                        f"{self.store_url}: use another file"
                    )
                continue
            v = Verdict.from_json(d)
            if v.status in _FINAL:
                self.done[v.digest] = v

    def finished(self, blob: BlobToCheck) -> Verdict | None:
        """The recorded verdict of ``blob``, if it was checked at this same size."""
        v = self.done.get(blob.digest)
        return v if v is not None and v.size == blob.size and v.key == blob.key else None

    def open(self) -> None:
        new = not self.path.exists() or self.path.stat().st_size == 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - see close()
        except OSError as e:
            raise UsageError(f"cannot write checkpoint {self.path}: {e.strerror}") from e
        if new:
            self._write({"format": CHECKPOINT_FORMAT, "store": self.store_url})

    def _write(self, obj: dict[str, Any]) -> None:
        assert self._file is not None
        with self._lock:
            self._file.write(json.dumps(obj, sort_keys=True) + "\n")
            self._file.flush()

    def record(self, v: Verdict) -> None:
        if v.status in _FINAL and self._file is not None:
            self._write(v.to_json())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class _Stopped(Exception):
    """Raised inside a worker when the scrub is being interrupted."""


def check_blob(
    store: ObjectStore,
    blob: BlobToCheck,
    chunk_size: int,
    on_bytes: Callable[[int], None] = lambda n: None,
    stop: threading.Event | None = None,
) -> Verdict:
    """Read ``blob`` once, hashing as it streams. Never raises for a store problem: that is
    the verdict ``unreadable`` (or ``vanished``)."""
    alg = blob.digest.partition(":")[0]
    if alg not in _HASHES:
        return Verdict(blob.digest, blob.key, blob.size, "unsupported", detail=alg)
    h = hashlib.new(alg)
    n = 0
    chunks = stream_object(store, blob.key, chunk_size=chunk_size)
    try:
        for chunk in chunks:
            if stop is not None and stop.is_set():
                raise _Stopped
            h.update(chunk)
            n += len(chunk)
            on_bytes(len(chunk))
    except ObjectNotFound:
        return Verdict(blob.digest, blob.key, blob.size, "vanished", n)
    except StoreError as e:
        return Verdict(blob.digest, blob.key, blob.size, "unreadable", n, detail=str(e))
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # release the connection of a stream left early
    actual = f"{alg}:{h.hexdigest()}"
    if actual != blob.digest:
        return Verdict(blob.digest, blob.key, blob.size, "digest-mismatch", n, actual)
    if n != blob.size:
        return Verdict(blob.digest, blob.key, blob.size, "size-changed", n, actual)
    return Verdict(blob.digest, blob.key, blob.size, "ok", n, actual)


def plan_scrub(
    blobs: Iterable[BlobToCheck], options: ScrubOptions, checkpoint: Checkpoint | None
) -> tuple[list[BlobToCheck], ScrubResult]:
    """Choose the blobs to read: sampled, not finished before, within the byte budget, in
    digest order. Returns them and a result holding the counts and resumed verdicts."""
    res = ScrubResult()
    todo: list[BlobToCheck] = []
    budget = options.max_bytes
    planned_bytes = 0
    over_budget = False
    for b in sorted(blobs, key=lambda b: b.digest):
        if not in_sample(b.digest, options.sample):
            res.not_sampled += 1
            continue
        done = checkpoint.finished(b) if checkpoint is not None else None
        if done is not None:
            res.resumed += 1
            res.verdicts.append(done)
            continue
        if over_budget or (budget is not None and planned_bytes + b.size > budget):
            over_budget = True  # keep digest order: later runs continue from here
            res.deferred += 1
            res.deferred_bytes += b.size
            continue
        planned_bytes += b.size
        todo.append(b)
    res.planned = len(todo)
    return todo, res


def scrub(
    store: ObjectStore,
    blobs: Iterable[BlobToCheck],
    options: ScrubOptions | None = None,
    *,
    progress: ScrubProgress = _no_status,
    executor: Executor | None = None,
) -> ScrubResult:
    """Hash ``blobs`` and return the verdicts (with those resumed from the checkpoint).

    ``progress`` is called from this thread; if it raises (or the caller is interrupted) the
    scrub stops: blobs not started are cancelled, blobs in flight stop at their next chunk,
    and the exception propagates. Everything finished before is in the checkpoint."""
    options = options or ScrubOptions()
    cp = Checkpoint(options.checkpoint, store.url) if options.checkpoint else None
    todo, res = plan_scrub(blobs, options, cp)
    total_bytes = sum(b.size for b in todo)
    started = time.monotonic()
    counter = _Counter()
    stop = threading.Event()

    def work(b: BlobToCheck) -> Verdict:
        return check_blob(store, b, options.chunk_size, counter.add, stop)

    own = executor is None
    pool: Executor = executor or ThreadPoolExecutor(
        max_workers=options.workers, thread_name_prefix="scrub"
    )
    # A bounded window of submitted blobs: millions of queued futures would cost memory, and
    # an interruption only has to cancel a few.
    window = max(2 * options.workers, 4)
    queue = iter(todo)
    pending: set[Future[Verdict]] = set()
    if cp is not None:
        cp.open()
    try:
        for b in queue:
            pending.add(pool.submit(work, b))
            if len(pending) >= window:
                break
        while pending:
            done, pending = wait(pending, timeout=_TICK_SECONDS, return_when=FIRST_COMPLETED)
            failed: BaseException | None = None
            for fut in done:
                exc = fut.exception()
                if exc is not None:
                    failed = failed or exc
                    continue
                v = fut.result()
                res.verdicts.append(v)
                res.checked += 1
                res.bytes_read += v.bytes_read
                if cp is not None:
                    cp.record(v)
                nxt = next(queue, None)
                if nxt is not None:
                    pending.add(pool.submit(work, nxt))
            if failed is not None:
                raise failed  # after recording every blob that finished
            progress(
                ScrubStatus(
                    res.checked, len(todo), counter.value, total_bytes, time.monotonic() - started
                )
            )
    except BaseException:
        stop.set()
        for fut in pending:
            fut.cancel()
        if own:
            pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        if cp is not None:
            cp.close()
    if own:
        pool.shutdown(wait=True)
    res.elapsed = time.monotonic() - started
    res.verdicts.sort(key=lambda v: v.digest)
    return res


class _Counter:
    """Bytes read so far, by every worker."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self.value += n
