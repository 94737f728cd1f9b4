"""Write S3 Inventory and Azure Blob Inventory reports of a store, in the vendors' formats
(storage-layout.md §6.1, §6.2), from the store's own listing.

S3: ``<dest-prefix>/<source-bucket>/<config-id>/YYYY-MM-DDTHH-MMZ/manifest.json`` (+
``manifest.checksum``) and ``<dest-prefix>/<source-bucket>/<config-id>/data/<uuid>.<ext>``;
CSV is gzip, no header, every field double-quoted, keys URL-encoded (form encoding); ORC is
ZLIB; Parquet is Snappy with ``last_modified_date`` as TIMESTAMP_MILLIS.

Azure: ``YYYY/MM/DD/HH-MM-SS/<rule>/<rule>_<n>.csv|parquet`` and ``<rule>-manifest.json`` (+
``<rule>-manifest.checksum``); CSV has a header row; ``Name`` is ``<container>/<blob name>``.
"""

from __future__ import annotations

import base64
import csv
import gzip
import hashlib
import io
import json
import urllib.parse
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.orc as orc
import pyarrow.parquet as pq

from regsweep.clock import utcnow
from regsweep.scan.snapshot import Snapshot, rows
from regsweep.storage.base import ObjectInfo, ObjectStore

Put = Callable[[str, bytes], None]

S3_CSV_SCHEMA = "Bucket, Key, Size, LastModifiedDate, ETag, IsMultipartUploaded"
S3_CSV_SCHEMA_VERSIONS = (
    "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, "
    "IsMultipartUploaded"
)
S3_ORC_SCHEMA = (
    "struct<bucket:string,key:string,size:bigint,last_modified_date:timestamp,"
    "e_tag:string,is_multipart_uploaded:boolean>"
)
S3_PARQUET_SCHEMA = (
    "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); "
    "optional int64 size; optional int64 last_modified_date (TIMESTAMP_MILLIS); "
    "optional binary e_tag (UTF8); optional boolean is_multipart_uploaded; }"
)
AZURE_FIELDS = [
    "Name",
    "Creation-Time",
    "Last-Modified",
    "Etag",
    "Content-Length",
    "Content-MD5",
    "BlobType",
]


DEMO_NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)  # the demo store's "now"


def later(minutes: int = 0) -> datetime:
    """An inventory's creation time: after every write so far (service times are whole
    seconds), ``minutes`` more."""
    return (utcnow() + timedelta(seconds=2, minutes=minutes)).replace(microsecond=0)


@dataclass(frozen=True)
class Row:
    """One inventory row: a full bucket key (or blob name) and its properties."""

    key: str
    size: int
    last_modified: datetime
    etag: str | None
    version_id: str | None = None
    is_latest: bool = True
    is_delete_marker: bool = False
    content_md5: str | None = None  # hex, as ObjectInfo (Azure writes it in base64)


def rows_of(store: ObjectStore, full_prefix: str = "") -> list[Row]:
    """The store's objects (its whole listing) as rows keyed as in the bucket/container."""
    return [
        Row(full_prefix + o.key, o.size, o.last_modified, o.etag, content_md5=o.content_md5)
        for o in store.iter_objects("")
    ]


def rows_from(objs: Sequence[ObjectInfo], full_prefix: str = "") -> list[Row]:
    return [
        Row(full_prefix + o.key, o.size, o.last_modified, o.etag, content_md5=o.content_md5)
        for o in objs
    ]


def put_into(store: ObjectStore) -> Put:
    def put(key: str, data: bytes) -> None:
        store.write(key, data)

    return put


def put_into_dir(root: Path) -> Put:
    def put(key: str, data: bytes) -> None:
        p = root / key
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)

    return put


def _iso_ms(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _chunks(rows: list[Row], files: int) -> list[list[Row]]:
    n = max(1, files)
    size = -(-len(rows) // n) or 1
    return [rows[i : i + size] for i in range(0, max(len(rows), 1), size)]


def _s3_csv(rows: list[Row], bucket: str, versions: bool) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for r in rows:
        key = urllib.parse.quote_plus(r.key, safe="")
        etag = r.etag or ""
        if versions:
            w.writerow(
                [
                    bucket,
                    key,
                    r.version_id or "",
                    str(r.is_latest).lower(),
                    str(r.is_delete_marker).lower(),
                    "" if r.is_delete_marker else r.size,
                    _iso_ms(r.last_modified),
                    "" if r.is_delete_marker else etag,
                    "false",
                ]
            )
        else:
            w.writerow([bucket, key, r.size, _iso_ms(r.last_modified), etag, "false"])
    return gzip.compress(buf.getvalue().encode(), mtime=0)


def _s3_table(rows: list[Row], bucket: str) -> pa.Table:
    return pa.table(
        {
            "bucket": pa.array([bucket] * len(rows), pa.string()),
            "key": pa.array([r.key for r in rows], pa.string()),
            "size": pa.array([r.size for r in rows], pa.int64()),
            "last_modified_date": pa.array(
                [r.last_modified for r in rows], pa.timestamp("ms", tz="UTC")
            ),
            "e_tag": pa.array([r.etag for r in rows], pa.string()),
            "is_multipart_uploaded": pa.array([False] * len(rows), pa.bool_()),
        }
    )


def write_s3_inventory(
    rows: list[Row],
    put: Put,
    *,
    source_bucket: str,
    fmt: str,
    created: datetime,
    dest_prefix: str = "inventories",
    config_id: str = "registry-daily",
    files: int = 2,
    versions: bool = False,
) -> str:
    """Write the report; return the key of its manifest.json."""
    base = f"{dest_prefix}/{source_bucket}/{config_id}"
    stamp = created.astimezone(UTC).strftime("%Y-%m-%dT%H-%MZ")
    entries: list[dict[str, Any]] = []
    for chunk in _chunks(rows, files):
        name = str(uuid.uuid4())
        if fmt == "CSV":
            data, ext = _s3_csv(chunk, source_bucket, versions), "csv.gz"
        elif fmt == "ORC":
            sink = io.BytesIO()
            orc.write_table(_s3_table(chunk, source_bucket), sink, compression="zlib")
            data, ext = sink.getvalue(), "orc"
        else:
            sink = io.BytesIO()
            pq.write_table(_s3_table(chunk, source_bucket), sink, compression="snappy")
            data, ext = sink.getvalue(), "parquet"
        key = f"{base}/data/{name}.{ext}"
        put(key, data)
        entries.append(
            {"key": key, "size": len(data), "MD5checksum": hashlib.md5(data).hexdigest()}
        )
    schema = {
        "CSV": S3_CSV_SCHEMA_VERSIONS if versions else S3_CSV_SCHEMA,
        "ORC": S3_ORC_SCHEMA,
        "Parquet": S3_PARQUET_SCHEMA,
    }[fmt]
    manifest = {
        "sourceBucket": source_bucket,
        "destinationBucket": "arn:aws:s3:::inventory-destination",
        "version": "2016-11-30",
        "creationTimestamp": str(int(created.timestamp() * 1000)),
        "fileFormat": fmt,
        "fileSchema": schema,
        "files": entries,
    }
    raw = json.dumps(manifest, indent=2).encode()
    manifest_key = f"{base}/{stamp}/manifest.json"
    put(manifest_key, raw)
    put(f"{base}/{stamp}/manifest.checksum", hashlib.md5(raw).hexdigest().encode())
    return manifest_key


def _azure_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}0Z"


def _base64_md5(r: Row) -> str:
    """Content-MD5 as Azure's report writes it: base64 of the 16 bytes, or empty."""
    return base64.b64encode(bytes.fromhex(r.content_md5)).decode() if r.content_md5 else ""


def write_azure_inventory(
    rows: list[Row],
    put: Put,
    *,
    container: str,
    fmt: str,
    created: datetime,
    rule: str = "registryrule",
    destination: str = "inventory",
    files: int = 2,
) -> str:
    """Write the report (``rows`` keyed by blob name); return the manifest's blob path."""
    folder = f"{created.astimezone(UTC):%Y/%m/%d/%H-%M-%S}/{rule}"
    entries: list[dict[str, Any]] = []
    for n, chunk in enumerate(_chunks(rows, files)):
        names = [f"{container}/{r.key}" for r in chunk]
        if fmt == "csv":
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(AZURE_FIELDS)
            for name, r in zip(names, chunk, strict=True):
                t = _azure_time(r.last_modified)
                w.writerow([name, t, t, r.etag or "", r.size, _base64_md5(r), "BlockBlob"])
            data = buf.getvalue().encode()
        else:
            times = pa.array([r.last_modified for r in chunk], pa.timestamp("ms", tz="UTC"))
            table = pa.table(
                {
                    "Name": pa.array(names, pa.string()),
                    "Creation-Time": times,
                    "Last-Modified": times,
                    "Etag": pa.array([r.etag for r in chunk], pa.string()),
                    "Content-Length": pa.array([r.size for r in chunk], pa.int64()),
                    "Content-MD5": pa.array([_base64_md5(r) or None for r in chunk], pa.string()),
                    "BlobType": pa.array(["BlockBlob"] * len(chunk), pa.string()),
                }
            )
            sink = io.BytesIO()
            pq.write_table(table, sink)
            data = sink.getvalue()
        blob = f"{folder}/{rule}_{1000000 + n}_0.{fmt}"
        put(blob, data)
        entries.append({"blob": blob, "size": len(data)})
    manifest = {
        "destinationContainer": destination,
        "endpoint": "https://account.blob.core.windows.net",
        "files": entries,
        "inventoryCompletionTime": _azure_time(created),
        "inventoryStartTime": _azure_time(created),
        "ruleDefinition": {
            "filters": {
                "blobTypes": ["blockBlob", "appendBlob"],
                "prefixMatch": [f"{container}/docker/registry/v2/"],
            },
            "format": fmt,
            "objectType": "blob",
            "schedule": "daily",
            "schemaFields": AZURE_FIELDS,
        },
        "ruleName": rule,
        "status": "Succeeded",
        "summary": {"objectCount": len(rows), "totalObjectSize": sum(r.size for r in rows)},
        "version": "1.0",
    }
    raw = json.dumps(manifest, indent=2).encode()
    path = f"{folder}/{rule}-manifest.json"
    put(path, raw)
    put(f"{folder}/{rule}-manifest.checksum", hashlib.md5(raw).hexdigest().encode())
    return path


# -- comparing snapshots ---------------------------------------------------------------------


def _ms(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.replace(microsecond=v.microsecond // 1000 * 1000)
    if isinstance(v, list):
        return [_ms(x) for x in v]
    return v


def comparable(snap: Snapshot) -> dict[str, list[dict[str, Any]]]:
    """Every table as rows, times at millisecond resolution (what Parquet, ORC and the CSV
    formats keep), in a stable order."""
    out = {}
    for name in snap.names():
        table = snap[name]
        rs = [{k: _ms(v) for k, v in r.items()} for r in rows(table)]
        out[name] = sorted(rs, key=repr)
    return out


def assert_same_snapshot(live: Snapshot, inv: Snapshot) -> None:
    a, b = comparable(live), comparable(inv)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name] == b[name], name
    assert {k: v for k, v in live.meta.items() if k not in ("scanned_at", "counts")} == {
        k: v for k, v in inv.meta.items() if k not in ("scanned_at", "counts", "inventory")
    }
