"""Generate a large registry store in Distribution's exact layout, deterministically from a seed.

    python bench/generate.py STORE --repos 300 --tags 20 --layers 4 --seed 1

STORE is any regsweep STORE (a directory, s3://BUCKET[/PREFIX], azure://CONTAINER[/PREFIX]). The
content is built with regsweep.demo's builders (valid gzip'd tar layers, Docker and OCI manifests,
OCI indexes), so docker-registry can serve it; objects are written by a thread pool. On a
filesystem the files are written directly, without fsync, so large stores are quick to make.

Parameters (fractions are 0..1):
  --repos N          repositories; --nested F of them sit inside another (a/b and a/b/c)
  --tags N           tags per repository (each tag is one image or one multi-arch index)
  --layers N         layers per image; --base-share F of them come from --bases shared images
  --multiarch F      share of tags that are an OCI index of two platform images
  --untagged F       share of tags that were overwritten once (leaving an untagged manifest)
  --orphans F        orphan blobs, as a share of the referenced blobs
  --blob-size N      approximate bytes per layer
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from regsweep.demo.generator import Blob, Layer, Manifest, image, index, make_layer
from regsweep.layout.keys import (
    blob_data_key,
    layer_link_key,
    revision_link_key,
    tag_current_key,
    tag_index_key,
)
from regsweep.storage.base import ObjectStore
from regsweep.storage.open import open_store

CREATED = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Params:
    repos: int = 100
    nested: float = 0.2
    tags: int = 10
    layers: int = 4
    base_share: float = 0.5
    bases: int = 8
    multiarch: float = 0.1
    untagged: float = 0.2
    orphans: float = 0.05
    blob_size: int = 2048
    seed: int = 1


@dataclass
class Stats:
    writes: int = 0  # objects written (a re-written link counts again)
    bytes: int = 0
    blobs: int = 0
    repositories: int = 0
    tags: int = 0
    untagged: int = 0
    orphans: int = 0


def repo_names(p: Params, rng: random.Random) -> list[str]:
    names: list[str] = []
    for i in range(p.repos):
        if names and rng.random() < p.nested:
            names.append(f"{rng.choice(names)}/sub{i}")
        else:
            names.append(f"org{i % 17}/app{i}")
    return names


class Emitter:
    """Collects (key, bytes) and hands them to writer threads; blob data is written once."""

    def __init__(self, pool: ThreadPoolExecutor, store: ObjectStore, fs_root: Path | None) -> None:
        self.pool = pool
        self.store = store
        self.fs_root = fs_root
        self.seen_blobs: set[str] = set()
        self.stats = Stats()
        self.lock = threading.Lock()
        self.pending: list = []
        self.batch: list[tuple[str, bytes]] = []
        self.current: dict[str, str] = {}  # tag current/link key -> digest

    def put(self, key: str, data: bytes) -> None:
        self.stats.writes += 1
        self.stats.bytes += len(data)
        self.batch.append((key, data))
        if len(self.batch) >= 512:
            self.flush()

    def flush(self) -> None:
        if self.batch:
            batch, self.batch = self.batch, []
            self.pending.append(self.pool.submit(self._write, batch))
            if len(self.pending) > 64:
                self.pending.pop(0).result()

    def _write(self, batch: list[tuple[str, bytes]]) -> None:
        for key, data in batch:
            if self.fs_root is not None:
                path = self.fs_root / key
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "wb") as f:
                    f.write(data)
            else:
                self.store.write(key, data)

    def blob(self, b: Blob) -> None:
        if b.digest not in self.seen_blobs:
            self.seen_blobs.add(b.digest)
            self.stats.blobs += 1
            self.put(blob_data_key(b.digest), b.data)

    def link(self, key: str, digest: str) -> None:
        self.put(key, digest.encode())

    def push(self, repo: str, m: Manifest, tag: str | None) -> None:
        """What a push writes: blobs and _layers links, children first, then the manifest."""
        for child in m.children:
            self.push(repo, child, None)
        for b in m.blobs:
            self.blob(b)
            self.link(layer_link_key(repo, b.digest), b.digest)
        self.blob(m.blob)
        self.link(revision_link_key(repo, m.digest), m.digest)
        if tag is not None:
            self.link(tag_index_key(repo, tag, m.digest), m.digest)
            # Written last, once: writer threads may reorder writes of one key.
            self.current[tag_current_key(repo, tag)] = m.digest

    def wait(self) -> None:
        for key, digest in self.current.items():
            self.link(key, digest)
        self.current.clear()
        self.flush()
        for f in self.pending:
            f.result()
        self.pending.clear()


def images(
    p: Params, rng: random.Random, repo: str, bases: list[list[Layer]]
) -> Iterator[tuple[str, Manifest, bool]]:
    """(tag, manifest, is_final) for one repository: overwritten versions come first."""
    for t in range(p.tags):
        tag = f"v1.{t}.0" if t % 2 == 0 else f"build-{t}"
        versions = 2 if rng.random() < p.untagged else 1
        for v in range(versions):

            def one(arch: str, tag: str = tag, v: int = v) -> Manifest:
                n_base = round(p.layers * p.base_share)
                base = rng.choice(bases)[:n_base] if n_base else []
                own = [
                    make_layer(f"{p.seed}/{repo}/{tag}/{v}/{arch}/{i}", p.blob_size, files=1)
                    for i in range(p.layers - len(base))
                ]
                return image([*base, *own], created=CREATED, architecture=arch)

            multi = rng.random() < p.multiarch
            m = index([one("amd64"), one("arm64")]) if multi else one("amd64")
            yield tag, m, v == versions - 1


def generate(
    store: ObjectStore, p: Params, *, workers: int = 16, fs_root: Path | None = None
) -> Stats:
    rng = random.Random(p.seed)
    bases = [
        [make_layer(f"{p.seed}/base{b}/{i}", p.blob_size, files=1) for i in range(p.layers)]
        for b in range(max(p.bases, 1))
    ]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        em = Emitter(pool, store, fs_root)
        for repo in repo_names(p, rng):
            em.stats.repositories += 1
            for tag, m, final in images(p, rng, repo, bases):
                em.push(repo, m, tag)
                if final:
                    em.stats.tags += 1
                else:
                    em.stats.untagged += 1
        n_orphans = int(em.stats.blobs * p.orphans)
        for i in range(n_orphans):
            em.blob(Blob(rng.randbytes(p.blob_size) + f"orphan {i}".encode()))
        em.stats.orphans = n_orphans
        em.wait()
    return em.stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("store")
    for f, default in asdict(Params()).items():
        ap.add_argument("--" + f.replace("_", "-"), type=type(default), default=default)
    ap.add_argument("--workers", type=int, default=16)
    a = ap.parse_args(argv)
    p = Params(**{f: getattr(a, f) for f in asdict(Params())})
    fs_root = None
    if "://" not in a.store or a.store.startswith("file://"):
        fs_root = Path(a.store.removeprefix("file://"))
        fs_root.mkdir(parents=True, exist_ok=True)
    store = open_store(a.store)
    t0 = time.monotonic()
    stats = generate(store, p, workers=a.workers, fs_root=fs_root)
    print(
        json.dumps(
            {
                "params": asdict(p),
                "stats": asdict(stats),
                "seconds": round(time.monotonic() - t0, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
