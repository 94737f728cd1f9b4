"""The digest scrub (``--verify-digests``): it finds one flipped byte in a 50 MB blob and a
blob truncated by one byte, on every backend; it samples and budgets deterministically; and an
interrupted scrub resumes from its checkpoint without re-reading what it finished.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from imagegen import Blob, Layer, LayoutWriter, image, sample_image
from regsweep.audit.report import AuditOptions, AuditReport, run_audit
from regsweep.audit.scrub import (
    BlobToCheck,
    ScrubOptions,
    ScrubStatus,
    in_sample,
    scrub,
)
from regsweep.errors import StoreError, UsageError
from regsweep.layout.keys import blob_data_key
from regsweep.storage.base import ObjectStore
from regsweep.storage.filesystem import FilesystemStore
from regsweep.storage.readonly import ReadOnlyStore

MakeStore = Callable[..., ObjectStore]
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def findings(report: AuditReport, *kinds: str) -> set[tuple[str, str, str | None]]:
    return {(f.kind, f.severity, f.key) for f in report.findings if f.kind in kinds}


def blobs_of(store: ObjectStore) -> list[BlobToCheck]:
    out = []
    for o in store.iter_objects("docker/registry/v2/blobs/"):
        parts = o.key.split("/")
        out.append(BlobToCheck(f"{parts[-4]}:{parts[-2]}", o.key, o.size))
    return out


class CountingStore:
    """Counts the blob reads (``iter_read``) that reach the store, per key; optionally raises
    ``fail_with`` for the ``fail_after``-th and later reads (an interruption)."""

    def __init__(
        self,
        inner: ObjectStore,
        fail_after: int | None = None,
        fail_with: BaseException | None = None,
    ) -> None:
        self.inner = inner
        self.url = inner.url
        self.reads: Counter[str] = Counter()
        self.fail_after = fail_after
        self.fail_with = fail_with
        self._lock = threading.Lock()

    def iter_read(self, key: str, *, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        with self._lock:
            n = sum(self.reads.values())
            if self.fail_after is not None and n >= self.fail_after:
                assert self.fail_with is not None
                raise self.fail_with
            self.reads[key] += 1
        return self.inner.iter_read(key, chunk_size=chunk_size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


# -- corruption --------------------------------------------------------------------------------


def test_flipped_byte_in_50mb_blob_and_truncated_blob(
    store_factory: MakeStore, tmp_path: Path
) -> None:
    store = store_factory("fs")
    assert isinstance(store, FilesystemStore)
    big = Blob(os.urandom(50 * 1024 * 1024))
    small = Blob(os.urandom(300_000))
    img = image([Layer(big, "sha256:" + "1" * 64), Layer(small, "sha256:" + "2" * 64)], created=NOW)
    LayoutWriter(store).push("app", img, ["v1"])
    healthy = sample_image("healthy", layers=2, size=20_000)
    LayoutWriter(store).push("other", healthy, ["v1"])

    # One byte flipped in the middle of the 50 MB layer: same size, different content.
    path = store.root / blob_data_key(big.digest)
    with open(path, "r+b") as f:
        f.seek(25 * 1024 * 1024 + 7)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x01]))
    # The small layer loses its last byte.
    (store.root / blob_data_key(small.digest)).write_bytes(small.data[:-1])

    # Without the scrub only the size check sees the truncation; the flipped byte is invisible.
    plain = run_audit(ReadOnlyStore(store), AuditOptions(now=NOW))
    assert findings(plain, "digest-mismatch", "size-mismatch") == {
        ("size-mismatch", "error", blob_data_key(small.digest))
    }

    statuses: list[ScrubStatus] = []
    report = run_audit(
        ReadOnlyStore(store),
        AuditOptions(now=NOW, verify_digests=True, scrub_workers=4),
        scrub_progress=statuses.append,
    )
    assert findings(report, "digest-mismatch", "size-mismatch", "unreadable-blob") == {
        ("digest-mismatch", "error", blob_data_key(big.digest)),
        ("digest-mismatch", "error", blob_data_key(small.digest)),
        ("size-mismatch", "error", blob_data_key(small.digest)),
    }
    (flipped,) = [
        f for f in report.findings if f.kind == "digest-mismatch" and f.digest == big.digest
    ]
    assert flipped.repository == "app" and "hashes to sha256:" in flipped.detail
    assert report.exit_code == 1
    s = report.scrub
    assert s is not None
    every = blobs_of(store)
    assert s.checked == len(every) and s.planned == len(every)
    assert s.bytes_read == sum(b.size for b in every)
    assert {v.status for v in s.verdicts} == {"ok", "digest-mismatch"}
    assert statuses and statuses[-1].blobs_done == len(every)
    assert statuses[-1].bytes_done == s.bytes_read and statuses[-1].bytes_per_second > 0
    assert s.bytes_per_second > 0


@pytest.mark.parametrize("kind", ["s3", "azure"])
def test_scrub_on_cloud_stores(store_factory: MakeStore, kind: str) -> None:
    store = store_factory(kind)
    img = sample_image("cloud", layers=3, size=30_000)
    LayoutWriter(store).push("team/app", img, ["v1"])
    flipped, truncated = img.blobs[1], img.blobs[2]
    data = bytearray(flipped.data)
    data[len(data) // 2] ^= 0xFF
    store.write(blob_data_key(flipped.digest), bytes(data))
    store.write(blob_data_key(truncated.digest), truncated.data[:-1])

    report = run_audit(ReadOnlyStore(store), AuditOptions(now=NOW, verify_digests=True))
    assert findings(report, "digest-mismatch", "size-mismatch") == {
        ("digest-mismatch", "error", blob_data_key(flipped.digest)),
        ("digest-mismatch", "error", blob_data_key(truncated.digest)),
        ("size-mismatch", "error", blob_data_key(truncated.digest)),
    }
    assert report.scrub is not None and report.scrub.checked == len(blobs_of(store))


def test_unreadable_blob_is_reported_and_retried(store_factory: MakeStore, tmp_path: Path) -> None:
    store = store_factory("fs")
    img = sample_image("unreadable", layers=2, size=5_000)
    LayoutWriter(store).push("app", img, ["v1"])
    bad = blob_data_key(img.blobs[1].digest)

    class Flaky(CountingStore):
        def iter_read(self, key: str, *, chunk_size: int = 1 << 20) -> Iterator[bytes]:
            if key == bad:
                raise StoreError("connection reset while reading")
            return super().iter_read(key, chunk_size=chunk_size)

    cp = tmp_path / "scrub.jsonl"
    res = scrub(Flaky(store), blobs_of(store), ScrubOptions(checkpoint=cp))  # type: ignore[arg-type]
    (f,) = res.findings()
    assert (f.kind, f.severity, f.key) == ("unreadable-blob", "error", bad)
    assert "connection reset" in f.detail
    # Not final: the next run reads it again, and only it.
    again = CountingStore(store)
    res2 = scrub(again, blobs_of(store), ScrubOptions(checkpoint=cp))  # type: ignore[arg-type]
    assert set(again.reads) == {bad}
    assert res2.findings() == [] and res2.resumed == len(blobs_of(store)) - 1


# -- limits --------------------------------------------------------------------------------------


def _many_blobs(store: ObjectStore, n: int, size: int = 4096) -> list[BlobToCheck]:
    w = LayoutWriter(store)
    for i in range(n):
        w.push_blob("app", Blob(os.urandom(size - 1) + bytes([i % 256])))
    return blobs_of(store)


def test_sample_is_deterministic_by_digest(store_factory: MakeStore) -> None:
    store = store_factory("fs")
    blobs = _many_blobs(store, 40)
    first = CountingStore(store)
    r1 = scrub(first, blobs, ScrubOptions(sample=0.5))  # type: ignore[arg-type]
    second = CountingStore(store)
    r2 = scrub(second, list(reversed(blobs)), ScrubOptions(sample=0.5))  # type: ignore[arg-type]
    assert set(first.reads) == set(second.reads)
    chosen = {b.key for b in blobs if in_sample(b.digest, 0.5)}
    assert set(first.reads) == chosen and 8 <= len(chosen) <= 32
    assert r1.not_sampled == r2.not_sampled == 40 - len(chosen)
    assert in_sample("sha256:" + "0" * 64, 0.01) and not in_sample("sha256:" + "f" * 64, 0.99)
    nothing = CountingStore(store)
    assert scrub(nothing, blobs, ScrubOptions(sample=0.0)).checked == 0  # type: ignore[arg-type]
    assert not nothing.reads


def test_max_bytes_defers_in_digest_order_and_the_checkpoint_continues(
    store_factory: MakeStore, tmp_path: Path
) -> None:
    store = store_factory("fs")
    blobs = _many_blobs(store, 10, size=4096)
    cp = tmp_path / "cp.jsonl"
    order = sorted(blobs, key=lambda b: b.digest)
    seen: list[str] = []
    for run in range(4):
        counting = CountingStore(store)
        res = scrub(counting, blobs, ScrubOptions(max_bytes=3 * 4096, checkpoint=cp))  # type: ignore[arg-type]
        expected = [b.key for b in order[3 * run : 3 * run + 3]]
        assert sorted(counting.reads) == sorted(expected), run
        assert res.checked == len(expected) and res.resumed == 3 * run
        assert res.deferred == max(0, 10 - 3 * run - len(expected))
        seen += expected
    assert sorted(seen) == sorted(b.key for b in blobs)


def test_checkpoint_of_another_store_is_refused(store_factory: MakeStore, tmp_path: Path) -> None:
    a, b = store_factory("fs"), store_factory("fs")
    _many_blobs(a, 2)
    _many_blobs(b, 2)
    cp = tmp_path / "cp.jsonl"
    scrub(a, blobs_of(a), ScrubOptions(checkpoint=cp))
    with pytest.raises(UsageError, match="checkpoint of"):
        scrub(b, blobs_of(b), ScrubOptions(checkpoint=cp))
    with pytest.raises(UsageError):
        ScrubOptions(sample=1.5)


# -- interruption and resume ----------------------------------------------------------------------


class Interrupted(BaseException):
    """What a ^C or a killed job looks like to the scrub: not a store error."""


def _finished(cp: Path) -> set[str]:
    lines = [json.loads(x) for x in cp.read_text().splitlines() if x.strip()]
    assert lines[0]["format"].startswith("regsweep-scrub-checkpoint")
    return {x["key"] for x in lines[1:]}


def test_interrupted_from_the_progress_callback_resumes(
    store_factory: MakeStore, tmp_path: Path
) -> None:
    store = store_factory("fs")
    blobs = _many_blobs(store, 24, size=200_000)
    cp = tmp_path / "scrub.jsonl"
    first = CountingStore(store)

    def stop_after_8(status: ScrubStatus) -> None:
        if status.blobs_done >= 8:
            raise Interrupted

    with pytest.raises(Interrupted):
        scrub(
            first,  # type: ignore[arg-type]
            blobs,
            ScrubOptions(checkpoint=cp, workers=2, chunk_size=16_384),
            progress=stop_after_8,
        )
    done = _finished(cp)
    assert 8 <= len(done) < 24
    assert done <= set(first.reads)

    second = CountingStore(store)
    res = scrub(second, blobs, ScrubOptions(checkpoint=cp, workers=2))  # type: ignore[arg-type]
    assert not set(second.reads) & done  # nothing finished is read again
    assert set(second.reads) | done == {b.key for b in blobs}
    assert all(n == 1 for n in second.reads.values())
    assert res.resumed == len(done) and res.checked == 24 - len(done)
    assert len(res.verdicts) == 24 and {v.status for v in res.verdicts} == {"ok"}
    assert _finished(cp) == {b.key for b in blobs}


def test_interrupted_by_the_store_resumes_and_keeps_verdicts(
    store_factory: MakeStore, tmp_path: Path
) -> None:
    """A store wrapper dies after 5 reads; a corrupt blob found before is still reported by
    the resumed run, which reads only the rest."""
    store = store_factory("fs")
    blobs = _many_blobs(store, 12, size=50_000)
    corrupt = sorted(blobs, key=lambda b: b.digest)[0]  # read first (digest order)
    assert isinstance(store, FilesystemStore)
    path = store.root / corrupt.key
    data = path.read_bytes()  # (its first byte flipped: random data may start with a zero)
    path.write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])
    cp = tmp_path / "scrub.jsonl"

    dying = CountingStore(store, fail_after=5, fail_with=Interrupted())
    with pytest.raises(Interrupted):
        scrub(dying, blobs, ScrubOptions(checkpoint=cp, workers=1))  # type: ignore[arg-type]
    done = _finished(cp)
    assert corrupt.key in done and len(done) == 5

    second = CountingStore(store)
    res = scrub(second, blobs, ScrubOptions(checkpoint=cp, workers=3))  # type: ignore[arg-type]
    assert set(second.reads) == {b.key for b in blobs} - done
    (f,) = res.findings()
    assert (f.kind, f.key) == ("digest-mismatch", corrupt.key)

    # Through run_audit the same checkpoint means no blob is read at all.
    third = CountingStore(store)
    report = run_audit(
        third,  # type: ignore[arg-type]
        AuditOptions(now=NOW, verify_digests=True, checkpoint=cp),
    )
    assert not third.reads
    assert ("digest-mismatch", "error", corrupt.key) in findings(report, "digest-mismatch")
    assert report.scrub is not None and report.scrub.resumed == 12
