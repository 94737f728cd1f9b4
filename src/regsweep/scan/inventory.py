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

import binascii
import csv
import hashlib
import json
import re
import tempfile
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from regsweep.errors import ObjectNotFound, StoreError, UsageError
from regsweep.storage.base import ObjectInfo, ObjectStore, stream_object
from regsweep.storage.columns import (
    LISTED_TIME,
    LISTING_SCHEMA,
    NULL_STRING,
    floor_ms,
    parse_time,
    parse_times,
    unquoted_etags,
)

INVENTORY_FORMS = (
    "s3://BUCKET/PATH/manifest.json, azure://CONTAINER/PATH/<rule>-manifest.json, "
    "or a local path (or file://PATH) to either manifest; or a folder (s3://BUCKET/PATH/, "
    "azure://CONTAINER/PATH/ or a local directory) for the newest manifest under it"
)
BATCH_ROWS = 32_768  # Parquet/ORC rows read at a time (CSV: blocks of 8 MiB)
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

    def batches(self, store: ObjectStore, root: str) -> Iterator[pa.Table]:
        """The objects of ``store`` under ``root`` that the inventory lists, as tables of
        LISTING_SCHEMA (key relative to the store, as its own listing would give it; size;
        last_modified truncated to the millisecond; etag without quotes, or null), one per
        batch of report rows that keeps any. Rows of another bucket or container, outside the
        store's prefix or outside ``root``, folder markers, delete markers, non-current
        versions, snapshots and soft-deleted blobs are left out. Raises InventoryError when a
        report file is missing, has the wrong checksum or size, or cannot be parsed, or a kept
        row has no size or no (parsable) last-modified time."""
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
                    for batch in self._rows(f, local):
                        try:
                            table = _listing(
                                batch,
                                self.vendor,
                                None if kind == "fs" else name,
                                want,
                                prefix,
                                csv_text=self.file_format == "csv",
                            )
                        except (KeyError, ValueError, TypeError, pa.ArrowException) as e:
                            raise InventoryError(
                                f"inventory {self.url}: report file {f.path}: bad row or "
                                f"missing column ({_one_line(e)})"
                            ) from e
                        if table.num_rows:
                            yield table
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

    def _rows(self, f: ReportFile, path: Path) -> Iterator[pa.RecordBatch]:
        """The report file's record batches (the columns regsweep uses, CSV ones as text)."""
        try:
            if self.file_format == "parquet":
                batches: Iterator[pa.RecordBatch] = _parquet_batches(path)
            elif self.file_format == "orc":
                batches = _orc_batches(path)
            elif self.vendor == "s3":
                batches = iter(_csv_batches(path, self.csv_columns, compressed=True))
            else:
                batches = iter(_csv_batches(path, None, compressed=False))
            for batch in batches:
                if batch.num_rows:
                    yield batch
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


# -- reading the data files -------------------------------------------------------------------
# Each yields RecordBatches with the vendor's column names (S3 CSV names normalised to the
# ORC/Parquet spelling), every CSV column as text.


def _parquet_batches(path: Path) -> Iterator[pa.RecordBatch]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path, memory_map=True)
    yield from pf.iter_batches(batch_size=BATCH_ROWS, columns=_wanted(pf.schema_arrow))


def _orc_batches(path: Path) -> Iterator[pa.RecordBatch]:
    import pyarrow.orc as orc

    of = orc.ORCFile(str(path))
    cols = _wanted(of.schema)
    for i in range(of.nstripes):
        stripe = of.read_stripe(i, columns=cols)  # one RecordBatch
        for o in range(0, stripe.num_rows, BATCH_ROWS):
            yield stripe.slice(o, BATCH_ROWS)


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
    "Content-MD5",
    "Deleted",
    "IsCurrentVersion",
    "Snapshot",
}


def _wanted(schema: pa.Schema) -> list[str]:
    return [n for n in schema.names if n in _USED]


def _csv_batches(path: Path, column_names: list[str] | None, compressed: bool) -> Any:
    """A streaming pyarrow CSV reader (RecordBatches of text columns)."""
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


# -- rows -> listing tables -------------------------------------------------------------------
# All with Arrow compute on whole columns; Python sees a value only on the rare rows that the
# vectorized parse rejects (times in unusual spellings, sizes like "1_000", keys whose
# percent-escapes do not decode to UTF-8), which go through the same Python code as before.

_NULL_BOOL = pa.nulls(1, pa.bool_())[0]  # as storage.columns.NULL_STRING
_HEX = np.full(256, -1, dtype=np.int16)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _i


def _listing(
    batch: pa.RecordBatch, vendor: str, name: str | None, want: str, prefix: str, csv_text: bool
) -> pa.Table:
    """One batch of report rows -> a LISTING_SCHEMA table of the store's objects under
    ``want`` (= prefix + root), keys relative to the store."""
    cols = dict(zip(batch.schema.names, batch.columns, strict=True))
    if vendor == "s3":
        full = _text(cols["key"])
        if csv_text:  # keys are URL-encoded, spaces as "+" (form encoding)
            full = _unquote_plus(full)
        keep = _under(full, want)
        bucket = cols.get("bucket")
        if name is not None and bucket is not None:
            b = _text(bucket)  # a row of another bucket (None and "" are taken as ours)
            ours = pc.is_in(b, value_set=pa.array(["", name], pa.string()))
            keep = pc.and_(keep, pc.or_(pc.is_null(b), ours))
        keep = _drop_where(keep, cols.get("is_latest"), False)  # a non-current version
        keep = _drop_where(keep, cols.get("is_delete_marker"), True)  # the key is gone
        size, when, etag = cols["size"], cols["last_modified_date"], cols.get("e_tag")
    else:
        names = _text(cols["Name"])  # <container>/<blob name>
        if name is None:
            full = pc.replace_substring_regex(
                names, pattern="^[^/]*(?:/|$)", replacement="", max_replacements=1
            )
            keep = _under(full, want)
        else:  # rows of another container of the same rule are left out
            full = pc.utf8_slice_codeunits(names, len(name) + 1)
            keep = pc.and_(pc.starts_with(names, name + "/"), _under(full, want))
        keep = _drop_where(keep, cols.get("Deleted"), True)
        keep = _drop_where(keep, cols.get("IsCurrentVersion"), False)  # an older version
        snapshot = cols.get("Snapshot")
        if snapshot is not None:
            keep = pc.and_(keep, pc.invert(_truthy(snapshot)))
        size, when, etag = cols["Content-Length"], cols["Last-Modified"], cols.get("Etag")
    md5 = cols.get("Content-MD5") if vendor == "azure" else None
    # ``full`` stands in for a column the report does not have (its rows are not read).
    parts = [full, size, when, etag if etag is not None else full, md5 if md5 is not None else full]
    kept = pa.RecordBatch.from_arrays(parts, names=[str(i) for i in range(len(parts))])
    kept = kept.filter(keep)
    n = kept.num_rows
    keys = kept.column(0)
    if prefix:
        keys = pc.utf8_slice_codeunits(keys, len(prefix))
    sizes = _sizes(kept.column(1))
    times = _times(kept.column(2))
    etags = _etags(kept.column(3)) if etag is not None else pa.nulls(n, pa.string())
    md5s = (
        _md5_hex(kept.column(4), pc.ends_with(keys, "/link"))
        if md5 is not None
        else pa.nulls(n, pa.string())
    )
    if sizes.null_count or times.null_count:
        bad = pc.indices_nonzero(pc.or_(pc.is_null(sizes), pc.is_null(times)))[0].as_py()
        raise ValueError(f"row for {keys[bad].as_py()} has no size or no last-modified time")
    return pa.Table.from_arrays([keys, sizes, times, etags, md5s], schema=LISTING_SCHEMA)


def _text(col: pa.Array) -> pa.Array:
    return col if col.type == pa.string() else pc.cast(col, pa.string())


def _under(full: pa.Array, want: str) -> pa.Array:
    """Keys below ``want`` that are not folder markers (null for a null key: left out)."""
    return pc.and_(pc.starts_with(full, want), pc.invert(pc.ends_with(full, "/")))


def _drop_where(keep: pa.Array, col: pa.Array | None, value: bool) -> pa.Array:
    """``keep`` without the rows whose flag ``col`` is ``value`` (a null flag drops nothing)."""
    if col is None:
        return keep
    if pa.types.is_boolean(col.type):
        flag = col
    elif pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        # as text (CSV): "" is unknown, "true" in any case and spacing is true, else false
        s = _text(col)
        true = pc.equal(pc.utf8_lower(pc.utf8_trim_whitespace(s)), "true")
        flag = pc.if_else(pc.equal(s, ""), _NULL_BOOL, true)
    else:
        return keep  # never a bool: never dropped
    hit = pc.fill_null(flag if value else pc.invert(flag), False)
    return pc.and_(keep, pc.invert(hit))


def _truthy(col: pa.Array) -> pa.Array:
    if pa.types.is_boolean(col.type):
        return pc.fill_null(col, False)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return pc.fill_null(pc.not_equal(col, ""), False)
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        return pc.fill_null(pc.not_equal(col, 0), False)
    return pc.is_valid(col)


def _sizes(col: pa.Array) -> pa.Array:
    t = col.type
    if pa.types.is_null(t):
        return pa.nulls(len(col), pa.int64())
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        s = pc.utf8_trim_whitespace(_text(col))
        s = pc.if_else(pc.equal(s, ""), NULL_STRING, s)
        try:
            return pc.cast(s, pa.int64())
        except pa.ArrowInvalid:  # "+5", "1_000", ...: Python's int() as before, or ValueError
            return pa.array([int(v) if v else None for v in col.to_pylist()], pa.int64())
    if pa.types.is_floating(t):
        if pc.any(pc.invert(pc.is_finite(col))).as_py():
            raise ValueError(f"size is not a number in column {col.type}")
        return pc.cast(col, pa.int64(), safe=False)  # truncated, as int() did
    if pa.types.is_decimal(t):
        return pc.cast(col, pa.int64(), safe=False)
    return pc.cast(col, pa.int64())


def _times(col: pa.Array) -> pa.Array:
    """A time column -> timestamp[ms, UTC], truncated to the millisecond; null stays null."""
    t = col.type
    if pa.types.is_timestamp(t):  # naive (ORC) is UTC: the integers are UTC epoch either way
        return floor_ms(col)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return parse_times(_text(col))
    if col.null_count == len(col):
        return pa.nulls(len(col), LISTED_TIME)
    raise ValueError(f"not a time: a {t} column")


def _unquote_plus(keys: pa.Array) -> pa.Array:
    """``urllib.parse.unquote_plus`` of every key, on the bytes: "+" -> " ", valid "%XX" ->
    the byte. Falls back to Python when the decoded bytes are not UTF-8 (unquote_plus puts
    U+FFFD there)."""
    n = len(keys)
    offsets_buf, data_buf = keys.buffers()[1], keys.buffers()[2]
    if n == 0 or data_buf is None:
        return keys
    offsets = np.frombuffer(offsets_buf, dtype=np.int32)[keys.offset : keys.offset + n + 1]
    start = int(offsets[0])
    data = np.frombuffer(data_buf, dtype=np.uint8)[start : int(offsets[-1])]
    plus = data == 0x2B
    pct = np.flatnonzero(data == 0x25)
    if not plus.any() and not len(pct):
        return keys
    off = offsets.astype(np.int64) - start
    ends = off[np.searchsorted(off, pct, side="right")]  # end of the key holding each "%"
    pct = pct[pct + 2 < ends]
    hi, lo = _HEX[data[pct + 1]], _HEX[data[pct + 2]]
    ok = (hi >= 0) & (lo >= 0)
    pct, hi, lo = pct[ok], hi[ok], lo[ok]
    out = data.copy()
    out[plus] = 0x20
    out[pct] = (hi << 4 | lo).astype(np.uint8)
    drop = np.zeros(len(data) + 1, dtype=np.int64)
    drop[pct + 1] = 1
    drop[pct + 2] = 1
    keep = drop[:-1] == 0
    removed = np.concatenate(([0], np.cumsum(drop[:-1])))
    new_off = (off - removed[off]).astype(np.int32)
    raw = pa.Array.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(new_off), pa.py_buffer(out[keep])]
    )
    try:
        text = raw.cast(pa.string())
    except pa.ArrowInvalid:
        return pa.array(
            [None if k is None else urllib.parse.unquote_plus(k) for k in keys.to_pylist()],
            pa.string(),
        )
    return pc.if_else(pc.is_valid(keys), text, NULL_STRING) if keys.null_count else text


def _etags(col: pa.Array) -> pa.Array:
    """Without the surrounding quotes; "" -> null."""
    return unquoted_etags(_text(col))


_B64 = np.full(256, 255, dtype=np.uint8)  # 255: not a base64 digit
_B64[
    np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", np.uint8)
] = np.arange(64, dtype=np.uint8)


def _md5_hex(col: pa.Array, rows: pa.Array) -> pa.Array:
    """Azure's Content-MD5 (base64 of 16 bytes: 22 characters and "==") as 32 hex digits, on
    the ``rows`` that want it (the scan uses the MD5 of links only); null elsewhere and where
    malformed. Decoded in numpy: a report can list millions of links."""
    text = _text(col)
    n = len(text)
    ok = pc.fill_null(
        pc.and_(rows, pc.and_(pc.equal(pc.binary_length(text), 24), pc.ends_with(text, "=="))),
        False,
    )
    good = pa.concat_arrays([text.filter(ok)])  # its own buffers
    m = len(good)
    if m == 0:
        return pa.nulls(n, pa.string())
    start = int(np.frombuffer(good.buffers()[1], dtype=np.int32)[good.offset])
    chars = np.frombuffer(good.buffers()[2], dtype=np.uint8)[start : start + 24 * m]
    chars = chars.reshape(m, 24).copy()
    valid = (_B64[chars[:, :22]] != 255).all(axis=1)
    chars[~valid] = ord("A")
    # "==" -> "AA": each value becomes 18 bytes of unpadded base64 (16 and two zero bytes),
    # so the whole column decodes in one call.
    chars[:, 22:] = ord("A")
    raw = np.frombuffer(binascii.a2b_base64(chars.tobytes()), dtype=np.uint8)
    hexes = raw.reshape(m, 18)[:, :16].tobytes().hex().encode()
    offsets = pa.py_buffer(np.arange(0, 32 * (m + 1), 32, dtype=np.int32))
    decoded = pa.Array.from_buffers(pa.string(), m, [None, offsets, pa.py_buffer(hexes)])
    decoded = pc.if_else(pa.array(valid), decoded, NULL_STRING)
    return pc.replace_with_mask(pa.nulls(n, pa.string()), ok, decoded)


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
        if not name:
            raise InventoryError(
                f"inventory {spec!r} does not name a manifest: use {INVENTORY_FORMS}"
            )
        from regsweep.storage.open import open_store

        store = open_store(f"{scheme}://{name}")
        if not key or key.endswith("/"):
            try:
                key = _newest_manifest(spec, store.iter_objects(key))
            except StoreError as e:
                raise InventoryError(f"inventory {spec}: cannot list it: {e}") from e
            spec = f"{scheme}://{name}/{key}"
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
    if path.is_dir():
        found = (p for p in path.rglob("*manifest.json") if p.is_file())
        path = Path(_newest_manifest(spec, (_local_info(p) for p in found)))
        spec = str(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InventoryError(f"inventory {spec}: cannot read the manifest ({e.strerror})") from e
    inv = _parse_manifest(spec, raw)
    inv.files = [ReportFile(str(_find_local(spec, path, f.path)), f.size, f.md5) for f in inv.files]
    return inv


def _newest_manifest(spec: str, objects: Iterable[ObjectInfo]) -> str:
    """The key of the most recently written inventory manifest among ``objects``: S3 writes a
    report's manifest.json, and Azure its <rule>-manifest.json, once the report is complete,
    so a folder of daily reports resolves to the newest complete one."""
    newest: tuple[datetime, str] | None = None
    for obj in objects:
        name = obj.key.rsplit("/", 1)[-1]
        if name != "manifest.json" and not name.endswith("-manifest.json"):
            continue
        if newest is None or (obj.last_modified, obj.key) > newest:
            newest = (obj.last_modified, obj.key)
    if newest is None:
        raise InventoryError(
            f"inventory {spec}: no manifest.json or <rule>-manifest.json under it: use "
            f"{INVENTORY_FORMS}"
        )
    return newest[1]


def _local_info(path: Path) -> ObjectInfo:
    st = path.stat()
    return ObjectInfo(str(path), st.st_size, datetime.fromtimestamp(st.st_mtime, UTC), None)


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
    created = parse_time(str(doc["inventoryStartTime"]))
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
