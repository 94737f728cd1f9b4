"""``Inventory.batches``: LISTING_SCHEMA tables read straight from report files on local disk,
for every format, with the rows that are not the store's objects left out (no services: the
store is only asked where it is)."""

from __future__ import annotations

import base64
import csv
import gzip
import hashlib
import io
import json
import random
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from inventory_builders import (
    S3_PARQUET_SCHEMA as PARQUET_SCHEMA,
)
from inventory_builders import (
    Row,
    put_into_dir,
    write_azure_inventory,
    write_s3_inventory,
)

from regsweep.scan.inventory import (
    BATCH_ROWS,
    InventoryError,
    _md5_hex,
    _unquote_plus,
    open_inventory,
)
from regsweep.scan.listing import LISTING_SCHEMA
from regsweep.storage.columns import parse_time, parse_times

ROOT = "docker/registry/v2/"
T0 = datetime(2026, 10, 1, 12, 30, 15, 123000, tzinfo=UTC)
HEX = "ab" * 32
S3_STORE: Any = SimpleNamespace(bucket="reg", prefix="pfx/", url="s3://reg/pfx")
AZ_STORE: Any = SimpleNamespace(container="cont", prefix="", url="azure://cont")
FS_STORE: Any = SimpleNamespace(url="/srv/registry")


def listing(manifest: str, store: Any, root: str = ROOT) -> pa.Table:
    tables = list(open_inventory(manifest).batches(store, root))
    for t in tables:
        assert t.schema == LISTING_SCHEMA
        assert t.num_rows > 0
    return pa.concat_tables(tables) if tables else LISTING_SCHEMA.empty_table()


def as_rows(table: pa.Table) -> list[tuple[Any, ...]]:
    d = table.to_pydict()
    return list(zip(d["key"], d["size"], d["last_modified"], d["etag"], strict=True))


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def s3_report(tmp: Path, fmt: str, schema: str, files: list[bytes], bucket: str = "reg") -> str:
    ext = {"CSV": "csv.gz", "ORC": "orc", "Parquet": "parquet"}[fmt]
    entries = []
    for i, data in enumerate(files):
        key = f"data/part-{i}.{ext}"
        (tmp / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp / key).write_bytes(data)
        entries.append({"key": key, "size": len(data), "MD5checksum": md5(data)})
    manifest = {
        "sourceBucket": bucket,
        "creationTimestamp": str(int(T0.timestamp() * 1000)),
        "fileFormat": fmt,
        "fileSchema": schema,
        "files": entries,
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest))
    return str(tmp / "manifest.json")


def azure_report(tmp: Path, fmt: str, files: list[bytes]) -> str:
    entries = []
    for i, data in enumerate(files):
        blob = f"2026/10/01/12-00-00/rule/rule_{i}.{fmt}"
        (tmp / blob).parent.mkdir(parents=True, exist_ok=True)
        (tmp / blob).write_bytes(data)
        entries.append({"blob": blob, "size": len(data)})
    manifest = {
        "destinationContainer": "inv",
        "inventoryStartTime": "2026-10-01T12:00:00.0000000Z",
        "status": "Succeeded",
        "ruleDefinition": {"format": fmt},
        "files": entries,
    }
    path = tmp / "2026/10/01/12-00-00/rule/rule-manifest.json"
    path.write_text(json.dumps(manifest))
    return str(path)


def csv_bytes(rows: list[list[str]], header: list[str] | None = None, gz: bool = True) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
    if header:
        w.writerow(header)
    w.writerows(rows)
    data = buf.getvalue().encode()
    return gzip.compress(data, mtime=0) if gz else data


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


# -- S3 --------------------------------------------------------------------------------------

ODD = ROOT + "repositories/a b+c%d/é:x/_manifests/tags/v1/current/link"


@pytest.mark.parametrize("fmt", ["CSV", "ORC", "Parquet"])
def test_s3_report_as_listing_tables(tmp_path: Path, fmt: str) -> None:
    blob = f"{ROOT}blobs/sha256/ab/{HEX}/data"
    report = [
        Row("pfx/" + blob, 10, T0, '"' + "0" * 32 + '"'),
        Row("pfx/" + ODD, 71, T0 + timedelta(seconds=1), None),
        Row("pfx/" + ROOT + "blobs/empty", 0, T0, '""'),
        Row("pfx/" + ROOT + "repositories/", 0, T0, None),  # a folder marker
        Row("pfx/other/" + blob, 5, T0, None),  # the store's prefix, not the root
        Row("elsewhere/" + blob, 5, T0, None),  # the bucket, not the store's prefix
        Row("pfx/" + ROOT + "blobs/sha256/cd/" + "cd" * 32 + "/data", 2**40, T0, "e-1"),
    ]
    key = write_s3_inventory(
        report, put_into_dir(tmp_path), source_bucket="reg", fmt=fmt, created=T0, files=3
    )
    got = listing(str(tmp_path / key), S3_STORE)
    assert as_rows(got) == [
        (blob, 10, T0, "0" * 32),
        (ODD, 71, T0 + timedelta(seconds=1), None),
        (ROOT + "blobs/empty", 0, T0, None),
        (ROOT + "blobs/sha256/cd/" + "cd" * 32 + "/data", 2**40, T0, "e-1"),
    ]
    # A store at the bucket's root with root "pfx/<ROOT>": the same objects, longer keys.
    whole: Any = SimpleNamespace(bucket="reg", prefix="", url="s3://reg")
    assert listing(str(tmp_path / key), whole, "pfx/" + ROOT)["key"].to_pylist() == [
        "pfx/" + k for k in got["key"].to_pylist()
    ]
    # A filesystem store: no bucket, no prefix.
    assert listing(str(tmp_path / key), FS_STORE, "pfx/" + ROOT).num_rows == 4


def test_s3_csv_versions_leave_out_old_versions_and_delete_markers(tmp_path: Path) -> None:
    a, b = "pfx/" + ROOT + "blobs/a", "pfx/" + ROOT + "blobs/b"
    report = [
        Row(a, 1, T0, "e1", version_id="v2"),
        Row(a, 7, T0 - timedelta(days=1), "e0", version_id="v1", is_latest=False),
        Row(b, 0, T0, None, version_id="dm", is_delete_marker=True),
        Row(b, 9, T0 - timedelta(days=2), "e9", version_id="v0", is_latest=False),
    ]
    key = write_s3_inventory(
        report, put_into_dir(tmp_path), source_bucket="reg", fmt="CSV", created=T0, versions=True
    )
    assert as_rows(listing(str(tmp_path / key), S3_STORE)) == [(ROOT + "blobs/a", 1, T0, "e1")]


CSV_SCHEMA = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag"


def test_s3_csv_rows_buckets_flags_and_time_spellings(tmp_path: Path) -> None:
    k = "pfx/" + ROOT + "blobs/"
    rows = [
        ["reg", k + "z", "", "true", "false", "1", "2026-10-01T12:30:15.123Z", '"q"'],
        ["other", k + "other-bucket", "", "true", "false", "1", "2026-10-01T12:30:15Z", ""],
        ["", k + "no-bucket", "", "", "", " 2 ", "2026-10-01T14:30:15.1239999+02:00", ""],
        ["reg", k + "naive", "", " TRUE ", "FALSE", "3", "2026-10-01T12:30:15.123", ""],
        ["reg", k + "rfc", "", "true", "false", "4", "Thu, 01 Oct 2026 12:30:15 GMT", ""],
        ["reg", k + "old", "v", "False", "false", "5", "garbage, not checked", ""],
        ["reg", k + "gone", "v", "true", "True", "", "", ""],
        ["reg", k + "yes", "", "yes", "false", "6", "2026-10-01T12:30:15.123Z", ""],
    ]
    manifest = s3_report(tmp_path, "CSV", CSV_SCHEMA, [csv_bytes(rows)])
    t = T0
    assert as_rows(listing(manifest, S3_STORE)) == [
        (ROOT + "blobs/z", 1, t, "q"),
        (ROOT + "blobs/no-bucket", 2, t, None),
        (ROOT + "blobs/naive", 3, t, None),
        (ROOT + "blobs/rfc", 4, t.replace(microsecond=0), None),
    ]  # "yes" is not "true": _bool made it False, so a non-current version


@pytest.mark.parametrize(
    ("size", "when", "match"),
    [
        ("", "2026-10-01T12:30:15Z", "has no size or no last-modified time"),
        ("1", "", "has no size or no last-modified time"),
        ("1", "yesterday", "unparsable time 'yesterday'"),
        ("one", "2026-10-01T12:30:15Z", "one"),
    ],
)
def test_s3_csv_kept_row_without_size_or_time(
    tmp_path: Path, size: str, when: str, match: str
) -> None:
    key = "pfx/" + ROOT + "blobs/x"
    good = ["reg", key, "", "true", "false", "1", "2026-10-01T12:30:15Z", ""]
    bad = ["reg", key, "", "true", "false", size, when, ""]
    skipped = ["reg", "pfx/elsewhere", "", "true", "false", size, when, ""]
    ok = s3_report(tmp_path / "ok", "CSV", CSV_SCHEMA, [csv_bytes([good, skipped])])
    assert listing(ok, S3_STORE).num_rows == 1
    manifest = s3_report(tmp_path / "bad", "CSV", CSV_SCHEMA, [csv_bytes([good, bad])])
    with pytest.raises(InventoryError, match=r"data/part-0\.csv\.gz") as e:
        listing(manifest, S3_STORE)
    assert match in str(e.value)


def test_s3_parquet_time_units_and_types(tmp_path: Path) -> None:
    ns = 1_790_000_000_123_456_789
    keys = ["pfx/" + ROOT + f"blobs/{i}" for i in range(4)]
    tables = [
        pa.table(
            {
                "bucket": ["reg"] * 2,
                "key": keys[:2],
                "size": pa.array([1, 2], pa.int32()),
                "last_modified_date": pa.array([ns, -1], pa.timestamp("ns", "UTC")),
                "e_tag": ['"x"', None],
                "is_latest": [True, None],
            }
        ),
        pa.table(
            {
                "bucket": ["reg"] * 2,
                "key": keys[2:],
                "size": pa.array([3, 4], pa.int64()),
                "last_modified_date": pa.array([ns // 10**9, 0], pa.timestamp("s")),
            }
        ),
    ]
    manifest = s3_report(tmp_path, "Parquet", PARQUET_SCHEMA, [parquet_bytes(t) for t in tables])
    at = datetime.fromtimestamp(ns // 10**9, UTC)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert as_rows(listing(manifest, S3_STORE)) == [
        (ROOT + "blobs/0", 1, at + timedelta(milliseconds=123), "x"),
        (ROOT + "blobs/1", 2, epoch - timedelta(milliseconds=1), None),  # floored, as before
        (ROOT + "blobs/2", 3, at, None),
        (ROOT + "blobs/3", 4, epoch, None),
    ]


def test_s3_parquet_missing_column_or_null_size(tmp_path: Path) -> None:
    key = "pfx/" + ROOT + "blobs/x"
    when = pa.array([T0], pa.timestamp("ms", "UTC"))
    no_size = pa.table({"bucket": ["reg"], "key": [key], "last_modified_date": when})
    manifest = s3_report(tmp_path / "a", "Parquet", PARQUET_SCHEMA, [parquet_bytes(no_size)])
    with pytest.raises(InventoryError, match=r"part-0.parquet: bad row or missing column \('size"):
        listing(manifest, S3_STORE)
    null_size = no_size.append_column("size", pa.array([None], pa.int64()))
    manifest = s3_report(tmp_path / "b", "Parquet", PARQUET_SCHEMA, [parquet_bytes(null_size)])
    with pytest.raises(InventoryError, match=f"row for {ROOT}blobs/x has no size"):
        listing(manifest, S3_STORE)
    int_time = pa.table({"bucket": ["reg"], "key": [key], "size": [1], "last_modified_date": [5]})
    manifest = s3_report(tmp_path / "c", "Parquet", PARQUET_SCHEMA, [parquet_bytes(int_time)])
    with pytest.raises(InventoryError, match="not a time"):
        listing(manifest, S3_STORE)


def test_s3_report_of_many_batches(tmp_path: Path) -> None:
    """More rows than one batch: bounded batches, every row once, in order."""
    n = 150_000
    keys = pa.array([f"pfx/{ROOT}blobs/{i:07d}" for i in range(n)])
    table = pa.table(
        {
            "bucket": pa.array(["reg"] * n),
            "key": keys,
            "size": pa.array(range(n), pa.int64()),
            "last_modified_date": pa.array([T0] * n, pa.timestamp("ms", "UTC")),
            "e_tag": pa.array(["e"] * n),
        }
    )
    manifest = s3_report(tmp_path, "Parquet", PARQUET_SCHEMA, [parquet_bytes(table)])
    tables = list(open_inventory(manifest).batches(S3_STORE, ROOT))
    assert len(tables) == -(-n // BATCH_ROWS) and max(t.num_rows for t in tables) <= BATCH_ROWS
    got = pa.concat_tables(tables)
    assert got["size"].to_pylist() == list(range(n))
    assert got["key"][n - 1].as_py() == f"{ROOT}blobs/{n - 1:07d}"


# -- Azure -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_azure_report_as_listing_tables(tmp_path: Path, fmt: str) -> None:
    t1 = T0 + timedelta(microseconds=456)  # Azure times have 7 digits: truncated to ms
    report = [
        Row(ROOT + "blobs/a", 10, T0, "0x8DC0000000000A1"),
        Row(ROOT + "blobs/é b", 11, t1 if fmt == "csv" else T0, None),
        Row(ROOT + "dir/", 0, T0, None),
        Row("other/" + ROOT + "blobs/a", 1, T0, None),
    ]
    path = write_azure_inventory(report, put_into_dir(tmp_path), container="cont", fmt=fmt,
                                 created=T0)  # fmt: skip
    path2 = write_azure_inventory(
        [Row(ROOT + "blobs/z", 1, T0, None)],
        put_into_dir(tmp_path),
        container="another",
        fmt=fmt,
        created=T0,
        rule="other",
    )
    expect = [(ROOT + "blobs/a", 10, T0, "0x8DC0000000000A1"), (ROOT + "blobs/é b", 11, T0, None)]
    assert as_rows(listing(str(tmp_path / path), AZ_STORE)) == expect
    assert listing(str(tmp_path / path2), AZ_STORE).num_rows == 0
    # A filesystem store takes every container's blob names.
    assert as_rows(listing(str(tmp_path / path2), FS_STORE)) == [(ROOT + "blobs/z", 1, T0, None)]
    prefixed: Any = SimpleNamespace(container="cont", prefix="docker/", url="azure://cont/docker")
    assert listing(str(tmp_path / path), prefixed, "registry/v2/")["key"].to_pylist() == [
        "registry/v2/blobs/a",
        "registry/v2/blobs/é b",
    ]


AZ_HEADER = ["Name", "Last-Modified", "Content-Length", "Etag", "Deleted", "IsCurrentVersion",
             "Snapshot"]  # fmt: skip


def test_azure_csv_versions_snapshots_soft_deletes_and_d2_names(tmp_path: Path) -> None:
    d2 = "/" + ROOT
    rows = [
        ["cont/" + d2 + "blobs/a", "2026-10-01T12:30:15.1239999Z", "1", '"0x1"', "", "", ""],
        ["cont/" + d2 + "blobs/b", "Thu, 01 Oct 2026 12:30:15 GMT", "2", "", "false", "true", ""],
        ["cont/" + d2 + "blobs/deleted", "", "", "", "true", "", ""],
        ["cont/" + d2 + "blobs/old", "", "", "", "", "false", ""],
        ["cont/" + d2 + "blobs/a", "", "", "", "", "", "2026-09-01T00:00:00.0000000Z"],
        ["contx/" + d2 + "blobs/a", "", "", "", "", "", ""],
        ["cont/" + ROOT + "blobs/a", "", "", "", "", "", ""],  # D3 name, D2 root
        ["cont", "", "", "", "", "", ""],
    ]
    manifest = azure_report(tmp_path, "csv", [csv_bytes(rows, AZ_HEADER, gz=False)])
    assert as_rows(listing(manifest, AZ_STORE, d2)) == [
        (d2 + "blobs/a", 1, T0, "0x1"),
        (d2 + "blobs/b", 2, T0.replace(microsecond=0), None),
    ]


def test_azure_parquet_flags_as_booleans(tmp_path: Path) -> None:
    n = ["cont/" + ROOT + f"blobs/{i}" for i in range(4)]
    table = pa.table(
        {
            "Name": n,
            "Last-Modified": pa.array([T0] * 4, pa.timestamp("ms", "UTC")),
            "Content-Length": pa.array([1, 2, 3, 4], pa.int64()),
            "Deleted": pa.array([None, True, False, False]),
            "IsCurrentVersion": pa.array([True, True, False, None]),
            "Snapshot": pa.array([None, None, None, ""]),
        }
    )
    manifest = azure_report(tmp_path, "parquet", [parquet_bytes(table)])
    got = listing(manifest, AZ_STORE)
    assert got["key"].to_pylist() == [ROOT + "blobs/0", ROOT + "blobs/3"]


# -- the vectorized parsers against the per-row ones they replace ----------------------------


def test_unquote_plus_matches_urllib() -> None:
    rng = random.Random(7)
    alphabet = "ab%+/2Fc3é0A9€"
    cases = ["a%2Fb", "a+b%2B", "%", "%4", "%zz%41", "x%4%41", "%C3%A9t%C3%A9", "%41%", ""]
    cases += ["%C3", "%C3é%A9", "%e2%82%ac+%E2%82%AC", "%%41"]
    for _ in range(300):
        cases.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))))
    for chunk in (cases, [c for c in cases if "%C3" not in c and "%c3" not in c.lower()]):
        got = _unquote_plus(pa.array(["pad", *chunk, None]).slice(1)).to_pylist()
        assert got == [urllib.parse.unquote_plus(c) for c in chunk] + [None]


def test_parse_times_matches_parse_time() -> None:
    texts = [
        "2026-10-01T12:30:15.000Z",
        "2026-10-01T12:30:15.4571217Z",
        " 2026-10-01T12:30:15.9999999+02:00 ",
        "2026-10-01T12:30:15-0130",
        "2026-10-01T12:30:15",
        "2026-10-01T12:30:15.1234567891Z",
        "2026-10-01",
        "Thu, 01 Oct 2026 12:30:15 GMT",
        "Thu, 01 Oct 2026 12:30:15 +0100",
        "",
    ]

    def ms(d: datetime | None) -> datetime | None:
        return None if d is None else d.replace(microsecond=d.microsecond // 1000 * 1000)

    for batch in ([t] for t in texts):  # each spelling alone (the fast paths)
        assert parse_times(pa.array(batch)).to_pylist() == [ms(parse_time(t)) for t in batch]
    mixed = parse_times(pa.array(texts)).to_pylist()  # all together (the fallback)
    assert mixed == [ms(parse_time(t)) for t in texts]
    with pytest.raises(ValueError, match="unparsable time 'soon'"):
        parse_times(pa.array(["2026-10-01T12:30:15Z", "soon"]))


def test_azure_content_md5_decodes_to_hex_and_leaves_the_rest_null() -> None:
    """Content-MD5 is base64 in an Azure report: the listing holds it as hex, as a live Azure
    listing does, on the rows that want it; a malformed value is null (the link is read)."""
    digests = [hashlib.md5(str(i).encode()).digest() for i in range(300)]
    cells = [base64.b64encode(d).decode() for d in digests]
    cells += [
        None,
        "",
        "abc",
        "!" * 22 + "==",
        "A" * 21 + "===",
        base64.b64encode(b"x" * 17).decode(),
    ]
    expected = [d.hex() for d in digests] + [None] * 6
    got = _md5_hex(pa.array(cells), pa.array([True] * len(cells)))
    assert got.to_pylist() == expected
    assert (
        _md5_hex(pa.array(cells).slice(7), pa.array([True] * (len(cells) - 7))).to_pylist()
        == (expected[7:])
    )
    every_other = pa.array([i % 2 == 0 for i in range(len(cells))])
    assert _md5_hex(pa.array(cells), every_other).to_pylist() == [
        e if i % 2 == 0 else None for i, e in enumerate(expected)
    ]
