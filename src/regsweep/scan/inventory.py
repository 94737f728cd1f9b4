"""Cloud inventories as the scan's listing (storage-layout.md §6).

An S3 Inventory report (``manifest.json`` with gzip CSV, ORC or Parquet files) or an Azure Blob
Inventory report (``<rule>-manifest.json`` with CSV or Parquet files) replaces *listing* the
store; it replaces nothing else. Links that need reading, manifests and stale S3 multipart
uploads (never in an inventory) are still read from the live store by the scanner.

An inventory is a stale snapshot: the snapshot records the report's creation time as its
listing time (``meta["scanned_at"]``, and ``meta["inventory"]``), ``make_plan`` never plans
with a ``now`` later than it (so nothing newer than creation - grace is a candidate), and apply
re-checks every candidate against the live store before it acts (§6.3 "Safety").

Every report file is checked before it is used: S3 files against the manifest's
``MD5checksum``, Azure files against the manifest's ``size``. A mismatch is an InventoryError
naming the file, never a partial listing.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from regsweep.errors import ObjectNotFound, StoreError, UsageError
from regsweep.storage.base import ObjectInfo, ObjectStore, stream_object

INVENTORY_FORMS = (
    "s3://BUCKET/PATH/manifest.json, azure://CONTAINER/PATH/<rule>-manifest.json, "
    "or a local path (or file://PATH) to either manifest"
)
BATCH_ROWS = 65_536  # rows turned into ObjectInfo at a time
MANIFEST_CAP = 64 * 1024 * 1024  # a manifest lists files, not objects: megabytes at most

# S3 CSV column names (fileSchema) -> the ORC/Parquet names, which we use throughout.
_S3_CSV_NAMES = {
    "Bucket": "bucket",
    "Key": "key",
    "VersionId": "version_id",
    "IsLatest": "is_latest",
    "IsDeleteMarker": "is_delete_marker",
    "Size": "size",
    "LastModifiedDate": "last_modified_date",
    "ETag": "e_tag",
    "IsMultipartUploaded": "is_multipart_uploaded",
}
_S3_NEEDED = ("key", "size", "last_modified_date")
_AZ_NEEDED = ("Name", "Content-Length", "Last-Modified")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", re.DOTALL)
_FRACTION = re.compile(r"\.(\d+)")


class InventoryError(UsageError):
    """An inventory that cannot be used: missing, malformed, incomplete or corrupt."""


@dataclass(frozen=True, slots=True)
class ReportFile:
    """One data file a manifest lists: its key (S3), blob path (Azure) or local path."""

    path: str
    size: int | None
    md5: str | None  # S3 only: hex MD5 of the file's bytes


@dataclass
class Inventory:
    """A parsed inventory manifest. ``vendor`` is ``s3`` or ``azure``; ``file_format`` is
    ``csv``, ``orc`` or ``parquet``; ``created_at`` is when the vendor's scan started."""

    url: str
    vendor: str
    file_format: str
    created_at: datetime
    files: list[ReportFile]
    source: str | None = None  # S3 sourceBucket; Azure has a container per row
    csv_columns: list[str] = field(default_factory=list)  # S3 CSV only, from fileSchema
    _fetch: Callable[[ReportFile, Path], None] | None = field(default=None, repr=False)

    def meta(self) -> dict[str, Any]:
        """What the snapshot records about this inventory."""
        return {
            "url": self.url,
            "vendor": self.vendor,
            "format": self.file_format,
            "created_at": self.created_at.isoformat(),
            "source": self.source,
            "files": len(self.files),
        }

    def batches(self, store: ObjectStore, root: str) -> Iterator[list[ObjectInfo]]:
        """The objects of ``store`` under ``root`` that the inventory lists, as ObjectInfo with
        keys relative to the store (as its own listing would give them), in batches. Rows of
        another bucket or container, outside the store's prefix or outside ``root``, delete
        markers, non-current versions, snapshots and soft-deleted blobs are left out. Raises
        InventoryError when a report file is missing, has the wrong checksum or size, or
        cannot be parsed."""
        kind, name, prefix = store_location(store)
        if {self.vendor, kind} == {"s3", "azure"}:
            raise InventoryError(
                f"inventory {self.url} is an {self.vendor.upper()} inventory, but STORE "
                f"{store.url} is on {'Azure' if kind == 'azure' else 'S3'}"
            )
        if self.vendor == "s3" and kind == "s3" and self.source and self.source != name:
            raise InventoryError(
                f"inventory {self.url} lists bucket {self.source}, but STORE {store.url} is "
                f"bucket {name}"
            )
        want = prefix + root
        with tempfile.TemporaryDirectory(prefix="regsweep-inventory-") as tmp:
            for i, f in enumerate(self.files):
                local = self._local(f, Path(tmp) / f"file-{i}")
                try:
                    for rows in self._rows(f, local):
                        try:
                            infos = _infos(
                                rows, self.vendor, None if kind == "fs" else name, want, prefix
                            )
                        except (KeyError, ValueError, TypeError) as e:
                            raise InventoryError(
                                f"inventory {self.url}: report file {f.path}: bad row or "
                                f"missing column ({_one_line(e)})"
                            ) from e
                        yield infos
                finally:
                    if local.parent == Path(tmp):
                        local.unlink(missing_ok=True)

    # -- report files ------------------------------------------------------------------------

    def _local(self, f: ReportFile, scratch: Path) -> Path:
        """A local, verified copy of ``f`` (downloaded to ``scratch`` when remote)."""
        if self._fetch is not None:
            self._fetch(f, scratch)
            path = scratch
        else:
            path = Path(f.path)
        _verify(self.url, f, path)
        return path

    def _rows(self, f: ReportFile, path: Path) -> Iterator[dict[str, list[Any]]]:
        try:
            if self.file_format == "parquet":
                yield from _parquet_rows(path)
            elif self.file_format == "orc":
                yield from _orc_rows(path)
            elif self.vendor == "s3":
                yield from _s3_csv_rows(path, self.csv_columns)
            else:
                yield from _azure_csv_rows(path)
        except InventoryError:
            raise
        except (pa.ArrowException, OSError, ValueError, csv.Error, EOFError) as e:
            raise InventoryError(
                f"inventory {self.url}: report file {f.path} cannot be read as "
                f"{self.file_format.upper()}: {_one_line(e)}"
            ) from e


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def store_location(store: ObjectStore) -> tuple[str, str | None, str]:
    """(``s3``|``azure``|``fs``, bucket or container, key prefix) of a store, looking through
    wrappers such as ReadOnlyStore (which keep the wrapped store in ``inner``)."""
    inner: Any = store
    while hasattr(inner, "inner"):
        inner = inner.inner
    if hasattr(inner, "bucket"):
        return "s3", str(inner.bucket), str(inner.prefix)
    if hasattr(inner, "container"):
        return "azure", str(inner.container), str(inner.prefix)
    return "fs", None, ""


def _verify(url: str, f: ReportFile, path: Path) -> None:
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                md5.update(chunk)
                size += len(chunk)
    except OSError as e:
        raise InventoryError(
            f"inventory {url}: report file {f.path} cannot be read: {e.strerror}"
        ) from e
    if f.md5 is not None and md5.hexdigest() != f.md5.lower():
        raise InventoryError(
            f"inventory {url}: report file {f.path} has MD5 {md5.hexdigest()}, but the manifest "
            f"says {f.md5}: the file is corrupt or was replaced; use another report"
        )
    if f.size is not None and size != f.size:
        raise InventoryError(
            f"inventory {url}: report file {f.path} is {size} bytes, but the manifest says "
            f"{f.size}: the file is incomplete or was replaced; use another report"
        )


# -- parsing the data files -------------------------------------------------------------------
# Each yields dicts of equal-length column lists, with the vendor's column names (S3 names
# normalised to the ORC/Parquet spelling).


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PER_US = {"s": 1_000_000, "ms": 1_000, "us": 1}


def _times(col: pa.Array) -> list[datetime | None]:
    """A timestamp column as UTC datetimes. Converting integers through a cache is several
    times faster than ``to_pylist`` (objects pushed together share their second)."""
    unit = col.type.unit
    ints = col.cast(pa.int64()).to_pylist()
    cache: dict[int, datetime] = {}
    out: list[datetime | None] = []
    for v in ints:
        if v is None:
            out.append(None)
            continue
        d = cache.get(v)
        if d is None:
            us = v // 1000 if unit == "ns" else v * _PER_US[unit]
            d = cache[v] = _EPOCH + timedelta(microseconds=us)
        out.append(d)
    return out


def _table_rows(batches: Iterator[pa.RecordBatch]) -> Iterator[dict[str, list[Any]]]:
    for batch in batches:
        if batch.num_rows:
            yield {
                name: _times(col) if pa.types.is_timestamp(col.type) else col.to_pylist()
                for name, col in zip(batch.schema.names, batch.columns, strict=True)
            }


def _parquet_rows(path: Path) -> Iterator[dict[str, list[Any]]]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path, memory_map=True)
    yield from _table_rows(pf.iter_batches(batch_size=BATCH_ROWS, columns=_wanted(pf.schema_arrow)))


def _orc_rows(path: Path) -> Iterator[dict[str, list[Any]]]:
    import pyarrow.orc as orc

    of = orc.ORCFile(str(path))
    cols = _wanted(of.schema)
    for i in range(of.nstripes):
        stripe = of.read_stripe(i, columns=cols)  # one RecordBatch
        parts = (stripe.slice(o, BATCH_ROWS) for o in range(0, stripe.num_rows, BATCH_ROWS))
        yield from _table_rows(parts)


_USED = {
    "bucket",
    "key",
    "version_id",
    "is_latest",
    "is_delete_marker",
    "size",
    "last_modified_date",
    "e_tag",
    "Name",
    "Content-Length",
    "Last-Modified",
    "Etag",
    "Deleted",
    "IsCurrentVersion",
    "Snapshot",
}


def _wanted(schema: pa.Schema) -> list[str]:
    return [n for n in schema.names if n in _USED]


def _csv_reader(path: Path, column_names: list[str] | None, compressed: bool) -> Any:
    import pyarrow.csv as pacsv

    stream = pa.input_stream(str(path), compression="gzip" if compressed else None)
    names = column_names
    if names is None:  # Azure: the first row is the header
        with open(path, encoding="utf-8-sig", newline="") as fh:
            first = fh.readline()
        names = next(csv.reader([first]), [])
        skip = 1
    else:
        skip = 0
    return pacsv.open_csv(
        stream,
        read_options=pacsv.ReadOptions(
            column_names=names, skip_rows=skip, block_size=8 << 20, encoding="utf8"
        ),
        parse_options=pacsv.ParseOptions(quote_char='"', newlines_in_values=False),
        convert_options=pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names},
            strings_can_be_null=False,
            include_columns=[n for n in names if n in _USED],
        ),
    )


def _s3_csv_rows(path: Path, columns: list[str]) -> Iterator[dict[str, list[Any]]]:
    reader = _csv_reader(path, columns, compressed=True)
    for rows in _table_rows(iter(reader)):
        # Keys are URL-encoded, spaces as "+" (form encoding); everything else is text.
        keys = [urllib.parse.unquote_plus(k) for k in rows["key"]]
        out: dict[str, list[Any]] = {"key": keys}
        out["size"] = [int(s) if s else None for s in rows["size"]]
        out["last_modified_date"] = [_parse_time(t) for t in rows["last_modified_date"]]
        for name in ("bucket", "e_tag", "version_id"):
            if name in rows:
                out[name] = rows[name]
        for name in ("is_latest", "is_delete_marker"):
            if name in rows:
                out[name] = [_bool(v) for v in rows[name]]
        yield out


def _azure_csv_rows(path: Path) -> Iterator[dict[str, list[Any]]]:
    reader = _csv_reader(path, None, compressed=False)
    for rows in _table_rows(iter(reader)):
        out: dict[str, list[Any]] = dict(rows)
        if "Content-Length" in rows:
            out["Content-Length"] = [int(s) if s else None for s in rows["Content-Length"]]
        if "Last-Modified" in rows:
            out["Last-Modified"] = [_parse_time(t) for t in rows["Last-Modified"]]
        for name in ("Deleted", "IsCurrentVersion"):
            if name in rows:
                out[name] = [_bool(v) for v in rows[name]]
        yield out


def _bool(v: Any) -> bool | None:
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        return v
    return str(v).strip().lower() == "true"


def _parse_time(text: str | None) -> datetime | None:
    """ISO 8601 (S3 ``2024-05-01T10:00:00.000Z``; Azure ``...:00.4571217Z``, 7 digits) or
    RFC 1123 (``Wed, 01 May 2024 10:00:00 GMT``)."""
    if not text:
        return None
    t = text.strip()
    try:
        if "," in t:
            from email.utils import parsedate_to_datetime

            return parsedate_to_datetime(t).astimezone(UTC)
        t = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], t, count=1)
        d = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except (ValueError, TypeError) as e:
        raise ValueError(f"unparsable time {text!r}") from e
    return d.replace(tzinfo=UTC) if d.tzinfo is None else d.astimezone(UTC)


def _utc(d: Any) -> datetime | None:
    if d is None:
        return None
    if type(d) is datetime and d.tzinfo is UTC:
        return d
    if not isinstance(d, datetime):
        raise ValueError(f"not a time: {d!r}")
    return d.replace(tzinfo=UTC) if d.tzinfo is None else d.astimezone(UTC)


def _infos(
    rows: dict[str, list[Any]], vendor: str, name: str | None, want: str, prefix: str
) -> list[ObjectInfo]:
    """Rows -> ObjectInfo of the store's objects under ``want`` (= prefix + root)."""
    out: list[ObjectInfo] = []
    if vendor == "s3":
        keys, sizes = rows["key"], rows["size"]
        times, etags = rows["last_modified_date"], rows.get("e_tag")
        latest, marker = rows.get("is_latest"), rows.get("is_delete_marker")
        buckets = rows.get("bucket") if name is not None else None
        for i, full in enumerate(keys):
            if full is None or not full.startswith(want) or full.endswith("/"):
                continue
            if buckets is not None and buckets[i] not in (None, "", name):
                continue
            if latest is not None and latest[i] is False:
                continue  # a non-current version
            if marker is not None and marker[i] is True:
                continue  # a delete marker: the key is gone
            out.append(_info(full[len(prefix) :], sizes[i], times[i], etags[i] if etags else None))
        return out
    names, sizes = rows["Name"], rows["Content-Length"]
    times, etags = rows["Last-Modified"], rows.get("Etag")
    deleted, current = rows.get("Deleted"), rows.get("IsCurrentVersion")
    snapshots = rows.get("Snapshot")
    for i, full in enumerate(names):
        if full is None:
            continue
        container, _, blob = full.partition("/")
        if name is not None and container != name:
            continue  # another container of the same rule
        if not blob.startswith(want) or blob.endswith("/"):
            continue
        if deleted is not None and deleted[i] is True:
            continue
        if current is not None and current[i] is False:
            continue  # an older version
        if snapshots is not None and snapshots[i]:
            continue
        out.append(_info(blob[len(prefix) :], sizes[i], times[i], etags[i] if etags else None))
    return out


def _info(key: str, size: Any, when: Any, etag: Any) -> ObjectInfo:
    t = _utc(when)
    if size is None or t is None:
        raise ValueError(f"row for {key} has no size or no last-modified time")
    tag = str(etag).strip('"') if etag else ""
    return ObjectInfo(key=key, size=int(size), last_modified=t, etag=tag or None)


# -- manifests --------------------------------------------------------------------------------


def open_inventory(url: str) -> Inventory:
    """Read the manifest that ``url`` names and return the Inventory it describes.

    ``url`` is ``s3://BUCKET/KEY`` (the report's ``manifest.json``), ``azure://CONTAINER/PATH``
    (``<rule>-manifest.json``), or a local path or ``file://PATH`` to either; the vendor is told
    by the manifest's fields. Report files are read later from the same bucket or container
    (opened on it with the STORE environment: ``AWS_*``, ``AZURE_STORAGE_*``), or for a local
    manifest from the directory tree around it. Raises InventoryError (exit 2) when the
    manifest cannot be read or is not an inventory manifest."""
    spec = url.strip()
    if not spec:
        raise InventoryError(f"empty inventory URL: give {INVENTORY_FORMS}")
    m = _SCHEME.match(spec)
    scheme = m.group(1).lower() if m else "file"
    rest = m.group(2) if m else spec
    if scheme in ("s3", "azure"):
        name, _, key = rest.partition("/")
        if not name or not key or key.endswith("/"):
            raise InventoryError(
                f"inventory {spec!r} does not name a manifest: use {INVENTORY_FORMS}"
            )
        from regsweep.storage.open import open_store

        store = open_store(f"{scheme}://{name}")
        try:
            raw = store.read(key, max_bytes=MANIFEST_CAP)
        except ObjectNotFound as e:
            raise InventoryError(f"inventory {spec}: no manifest at {key}") from e
        except StoreError as e:
            raise InventoryError(f"inventory {spec}: cannot read the manifest: {e}") from e
        inv = _parse_manifest(spec, raw)

        def fetch(f: ReportFile, dest: Path) -> None:
            try:
                with open(dest, "wb") as out:
                    for chunk in stream_object(store, f.path):
                        out.write(chunk)
            except ObjectNotFound as e:
                raise InventoryError(
                    f"inventory {spec}: report file {f.path} is missing from {scheme}://{name}"
                ) from e
            except StoreError as e:
                raise InventoryError(
                    f"inventory {spec}: cannot read report file {f.path}: {e}"
                ) from e

        inv._fetch = fetch
        return inv
    if scheme != "file":
        raise InventoryError(
            f"unknown inventory scheme {scheme!r} in {spec!r}: use {INVENTORY_FORMS}"
        )
    path = Path(rest)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InventoryError(f"inventory {spec}: cannot read the manifest ({e.strerror})") from e
    inv = _parse_manifest(spec, raw)
    inv.files = [ReportFile(str(_find_local(spec, path, f.path)), f.size, f.md5) for f in inv.files]
    return inv


def _find_local(spec: str, manifest: Path, key: str) -> Path:
    """A report file of a manifest copied to local disk: ``key`` (a key of the destination
    bucket, or a blob path of the destination container), or its longest tail, below the
    manifest's directory or one of its parents (a copy of the whole destination, or of the
    report's own folder)."""
    parts = [p for p in key.split("/") if p]
    base = manifest.resolve().parent
    for anc in [base, *base.parents]:
        for i in range(len(parts)):
            p = anc.joinpath(*parts[i:])
            if p.is_file():
                return p
    raise InventoryError(
        f"inventory {spec}: report file {key} not found near {manifest} (copy the report's "
        "data files with the manifest, keeping their paths)"
    )


def _parse_manifest(url: str, raw: bytes) -> Inventory:
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InventoryError(f"inventory {url}: the manifest is not JSON ({_one_line(e)})") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), list):
        raise InventoryError(f"inventory {url}: not an inventory manifest (no files list)")
    try:
        if "sourceBucket" in doc or "fileSchema" in doc:
            return _s3_manifest(url, doc)
        if "inventoryStartTime" in doc or "destinationContainer" in doc:
            return _azure_manifest(url, doc)
    except (KeyError, TypeError, ValueError) as e:
        raise InventoryError(f"inventory {url}: malformed manifest ({_one_line(e)})") from e
    raise InventoryError(
        f"inventory {url}: neither an S3 Inventory manifest.json (sourceBucket, fileSchema) "
        "nor an Azure Blob Inventory manifest (inventoryStartTime, destinationContainer)"
    )


def _s3_manifest(url: str, doc: dict[str, Any]) -> Inventory:
    fmt = str(doc["fileFormat"]).lower()
    if fmt not in ("csv", "orc", "parquet"):
        raise InventoryError(f"inventory {url}: unknown fileFormat {doc['fileFormat']!r}")
    created = datetime.fromtimestamp(int(doc["creationTimestamp"]) / 1000, tz=UTC)
    schema = str(doc.get("fileSchema", ""))
    columns: list[str] = []
    if fmt == "csv":
        columns = [_S3_CSV_NAMES.get(c.strip(), c.strip()) for c in schema.split(",")]
        present = set(columns)
    else:
        present = set(re.findall(r"[A-Za-z_]+", schema))  # struct<a:t,...> or message {..}
    missing = [n for n in _S3_NEEDED if n not in present]
    if missing:
        raise InventoryError(
            f"inventory {url}: the report has no {', '.join(missing)} column (configure the "
            "inventory with the optional fields Size, LastModifiedDate and ETag)"
        )
    files = [
        ReportFile(str(f["key"]), int(f["size"]) if "size" in f else None, f.get("MD5checksum"))
        for f in doc["files"]
    ]
    return Inventory(
        url=url,
        vendor="s3",
        file_format=fmt,
        created_at=created,
        files=files,
        source=str(doc.get("sourceBucket") or "") or None,
        csv_columns=columns,
    )


def _azure_manifest(url: str, doc: dict[str, Any]) -> Inventory:
    created = _parse_time(str(doc["inventoryStartTime"]))
    if created is None:
        raise ValueError("empty inventoryStartTime")
    status = str(doc.get("status", "") or "")
    if status and status.lower() not in ("succeeded", "partiallysucceeded"):
        raise InventoryError(f"inventory {url}: the inventory run did not succeed ({status})")
    files = [
        ReportFile(str(f["blob"]), int(f["size"]) if "size" in f else None, None)
        for f in doc["files"]
    ]
    rule = doc.get("ruleDefinition") or {}
    fmt = str((rule.get("format") if isinstance(rule, dict) else None) or "").lower()
    if not fmt:
        exts = {f.path.rsplit(".", 1)[-1].lower() for f in files}
        fmt = "parquet" if exts == {"parquet"} else "csv"
    if fmt not in ("csv", "parquet"):
        raise InventoryError(f"inventory {url}: unknown format {fmt!r}")
    if isinstance(rule, dict):
        fields = rule.get("schemaFields")
        if isinstance(fields, list):
            missing = [n for n in _AZ_NEEDED if n not in fields]
            if missing:
                raise InventoryError(
                    f"inventory {url}: the rule's schemaFields lack {', '.join(missing)}"
                )
    return Inventory(url=url, vendor="azure", file_format=fmt, created_at=created, files=files)


def inventory_time(meta: dict[str, Any]) -> datetime | None:
    """The creation time of the inventory a snapshot was listed from, or None for a live
    listing. Planning uses it as the latest possible ``now``."""
    inv = meta.get("inventory")
    if not isinstance(inv, dict) or not inv.get("created_at"):
        return None
    return datetime.fromisoformat(str(inv["created_at"]))


__all__ = ["Inventory", "InventoryError", "ReportFile", "inventory_time", "open_inventory"]
