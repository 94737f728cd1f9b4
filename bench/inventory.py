"""Benchmark: a gc plan over a large S3 Inventory report (issue 7 target: 10,000,000 objects in
under 5 minutes and under 2 GiB peak RSS).

    python bench/inventory.py --objects 10000000 [--files 10] [--workdir DIR] [--keep]

It writes, with pyarrow and without writing the listed objects anywhere:
  - a synthetic S3 Inventory report (manifest.json + Parquet files, the documented schema) of a
    registry with ``--objects`` keys: manifests, configs, shared layers, layer/revision/tag
    links in many repositories, and unreferenced blobs to fill up to ``--objects``;
  - a filesystem store holding only the manifest blobs (the scan reads manifests from the
    store; everything else comes from the inventory).
Then it runs, measured by GNU time,
  regsweep gc STORE --inventory MANIFEST --grace 0s --max-delete-fraction 1 --json
(plan only) and prints wall time, peak RSS and the plan's counts as a Markdown table row.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

V2 = "docker/registry/v2/"
OLD = datetime(2026, 1, 1, tzinfo=UTC)
CREATED = datetime(2026, 11, 1, tzinfo=UTC)
SCHEMA = (
    "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); "
    "optional int64 size; optional int64 last_modified_date (TIMESTAMP_MILLIS); "
    "optional binary e_tag (UTF8); }"
)


def blob_key(hex_: str) -> str:
    return f"{V2}blobs/sha256/{hex_[:2]}/{hex_}/data"


_SPREAD = 0x9E3779B97F4A7C15F39CC0605CEDC8341082276BF3A27251F86C6A11D0C18E95  # odd


def fake_hex(kind: int, i: int) -> str:
    """A 64-hex-digit digest that no real content has (the scan never hashes layers). Its
    leading digits are spread as a real digest's are (a registry's blobs fill the 256
    ``blobs/sha256/<h2>/`` directories evenly): ``i`` times an odd number modulo 2**224 is a
    different number for every ``i``, and ``kind`` is the last 8 digits."""
    return f"{(i * _SPREAD) % 2**224:056x}{kind:08x}"


def md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def generate(
    out: Path, store: Path, objects: int, files: int, repos: int, tags: int, images: int
) -> tuple[Path, dict[str, int]]:
    """Write the store's manifests and the report; return the manifest.json path and counts."""
    keys: list[str] = []
    sizes: list[int] = []
    etags: list[str | None] = []

    def add(key: str, size: int, etag: str | None) -> None:
        keys.append(key)
        sizes.append(size)
        etags.append(etag)

    layers_per_image, pool = 6, images * 3
    layer_hex = [fake_hex(1, i) for i in range(pool)]
    for h in layer_hex:
        add(blob_key(h), 1_000_000, None)
    manifests: list[tuple[str, list[str]]] = []  # (manifest hex, [config + layer hexes])
    for i in range(images):
        config = fake_hex(2, i)
        add(blob_key(config), 1_500, None)
        picked = [layer_hex[(i * 7 + j * 13) % pool] for j in range(layers_per_image)]
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": f"sha256:{config}",
                    "size": 1_500,
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": f"sha256:{h}",
                        "size": 1_000_000,
                    }
                    for h in picked
                ],
            },
            separators=(",", ":"),
        ).encode()
        mhex = hashlib.sha256(body).hexdigest()
        path = store / blob_key(mhex)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        add(blob_key(mhex), len(body), md5(body.decode()))
        manifests.append((mhex, [config, *picked]))
    links = 0
    for r in range(repos):
        repo = f"team{r % 50}/app{r}"
        linked: set[str] = set()
        for t in range(tags):
            mhex, refs = manifests[(r * 31 + t) % images]
            digest = f"sha256:{mhex}"
            tagname = f"v{t}"
            base = f"{V2}repositories/{repo}/_manifests"
            add(f"{base}/revisions/sha256/{mhex}/link", 71, md5(digest))
            add(f"{base}/tags/{tagname}/current/link", 71, md5(digest))
            add(f"{base}/tags/{tagname}/index/sha256/{mhex}/link", 71, md5(digest))
            links += 3
            for h in refs:
                if h not in linked:
                    linked.add(h)
                    add(f"{V2}repositories/{repo}/_layers/sha256/{h}/link", 71, md5(f"sha256:{h}"))
                    links += 1
    used = len(keys)
    orphans = max(0, objects - used)
    for i in range(orphans):
        add(blob_key(fake_hex(3, i)), 2_000_000, None)
    counts = {
        "objects": len(keys),
        "manifests": images,
        "layers": pool,
        "links": links,
        "orphan_blobs": orphans,
        "repositories": repos,
        "tags": repos * tags,
    }
    base = out / "inventories" / "registry" / "daily"
    (base / "data").mkdir(parents=True, exist_ok=True)
    entries = []
    step = -(-len(keys) // files)
    when = pa.array([OLD] * step, pa.timestamp("ms", tz="UTC"))
    for n, start in enumerate(range(0, len(keys), step)):
        part = slice(start, start + step)
        k = keys[part]
        table = pa.table(
            {
                "bucket": pa.array(["registry"] * len(k), pa.string()),
                "key": pa.array(k, pa.string()),
                "size": pa.array(sizes[part], pa.int64()),
                "last_modified_date": when[: len(k)],
                "e_tag": pa.array(etags[part], pa.string()),
            }
        )
        rel = f"inventories/registry/daily/data/part-{n:04d}.parquet"
        pq.write_table(table, out / rel, compression="snappy")
        data = (out / rel).read_bytes()
        entries.append({"key": rel, "size": len(data), "MD5checksum": md5_bytes(data)})
    stamp = base / CREATED.strftime("%Y-%m-%dT%H-%MZ")
    stamp.mkdir(parents=True, exist_ok=True)
    manifest = {
        "sourceBucket": "registry",
        "destinationBucket": "arn:aws:s3:::inventory-destination",
        "version": "2016-11-30",
        "creationTimestamp": str(int(CREATED.timestamp() * 1000)),
        "fileFormat": "Parquet",
        "fileSchema": SCHEMA,
        "files": entries,
    }
    (stamp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return stamp / "manifest.json", counts


def md5_bytes(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--objects", type=int, default=10_000_000)
    ap.add_argument("--files", type=int, default=10, help="Parquet files in the report")
    ap.add_argument("--repos", type=int, default=2_000)
    ap.add_argument("--tags", type=int, default=200, help="tags per repository")
    ap.add_argument("--images", type=int, default=20_000, help="distinct manifests")
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    args = ap.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="regsweep-bench-inventory-"))
    store, reports = work / "store", work / "reports"
    t0 = time.monotonic()
    manifest, counts = generate(
        reports, store, args.objects, args.files, args.repos, args.tags, args.images
    )
    gen_s = time.monotonic() - t0
    print(f"generated {counts} in {gen_s:.1f} s under {work}", file=sys.stderr)
    cmd = [
        sys.executable, "-m", "regsweep", "gc", str(store), "--inventory", str(manifest),
        "--grace", "0s", "--max-delete-fraction", "1", "--json",
    ]  # fmt: skip
    t0 = time.monotonic()
    proc = subprocess.run(
        ["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, check=False
    )
    wall = time.monotonic() - t0
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    rss_mib = int(m.group(1)) / 1024 if m else float("nan")
    cpu = sum(
        float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", proc.stderr)
    )
    if proc.returncode not in (0, 1):
        print(proc.stderr[-3000:], file=sys.stderr)
        return proc.returncode
    plan = json.loads(proc.stdout)
    summary = {k: v.get("count") for k, v in plan.get("summary", {}).items()}
    print("| objects | report files | plan wall (s) | CPU user+sys (s) | peak RSS (MiB) | plan |")
    print("|---:|---:|---:|---:|---:|---|")
    print(
        f"| {counts['objects']:,} | {args.files} | {wall:.1f} | {cpu:.1f} | {rss_mib:,.0f} | "
        f"{json.dumps(summary, sort_keys=True)} |"
    )
    print(" ".join(cmd))
    if not args.keep and args.workdir is None:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
