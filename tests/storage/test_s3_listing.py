"""S3's column-wise listing lists exactly what ``iter_objects`` lists (keys relative to the
store's prefix, sizes, times to the millisecond, ETags without quotes, no folder markers), and
the client's text timestamps read as botocore's parser read them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import boto3
import pyarrow as pa
import pytest

from regsweep.demo.generator import generate_demo
from regsweep.storage.base import ObjectStore
from regsweep.storage.columns import LISTING_SCHEMA, listing_table, unquoted_etags
from regsweep.storage.s3 import S3Store, _times, timestamp

V2 = "docker/registry/v2/"


def _by_key(table: pa.Table) -> list[dict[str, object]]:
    return sorted(table.to_pylist(), key=lambda r: str(r["key"]))


@pytest.mark.parametrize("prefix", ["", "pfx/root/"])
def test_list_table_equals_iter_objects(
    store_factory: Callable[..., ObjectStore], prefix: str
) -> None:
    store = store_factory("s3", prefix)
    assert isinstance(store, S3Store)
    generate_demo(store, seed=3, now=datetime(2026, 11, 20, tzinfo=UTC))
    # A folder marker, as consoles make them: not an object of the layout.
    store.client.put_object(Bucket=store.bucket, Key=store.full_key(V2 + "repositories/"))
    prefixes = [V2 + "blobs/", V2 + "repositories/"]
    fast = store.list_table(prefixes)
    slow = pa.concat_tables([listing_table(store.iter_objects(p)) for p in prefixes])
    assert fast.schema == LISTING_SCHEMA
    assert fast.num_rows == slow.num_rows > 50
    assert _by_key(fast) == _by_key(slow)
    assert all(not k.endswith("/") and not k.startswith("pfx") for k in fast["key"].to_pylist())
    assert all(e and '"' not in e for e in fast["etag"].to_pylist())
    # The times botocore's own parser gives (a client with its defaults), to the millisecond.
    plain = boto3.client("s3", endpoint_url=store.client.meta.endpoint_url)
    listed = {
        o["Key"][len(store.prefix) :]: o["LastModified"]
        for page in plain.get_paginator("list_objects_v2").paginate(Bucket=store.bucket)
        for o in page.get("Contents", ())
    }
    for row in fast.to_pylist():
        want = listed[row["key"]].astimezone(UTC)
        assert row["last_modified"] == want.replace(microsecond=want.microsecond // 1000 * 1000)


def test_times_and_etags_as_a_record_would_read_them() -> None:
    iso = ["2026-12-03T01:10:08.000Z", "2026-12-03T02:10:08.123456+01:00", "2026-12-03T01:10:08Z"]
    assert _times(list(iso)).to_pylist() == [
        datetime(2026, 12, 3, 1, 10, 8, tzinfo=UTC),
        datetime(2026, 12, 3, 1, 10, 8, 123000, tzinfo=UTC),
        datetime(2026, 12, 3, 1, 10, 8, tzinfo=UTC),
    ]
    # Not ISO 8601 with a zone (an HTTP date; a datetime from a client made elsewhere): one by
    # one, as botocore's own parser reads them.
    odd: list[datetime | str] = [
        "Wed, 03 Dec 2026 01:10:08 GMT",
        datetime(2026, 12, 3, 3, 10, 8, 999999, tzinfo=timezone(timedelta(hours=2))),
    ]
    assert _times(odd).to_pylist() == [
        datetime(2026, 12, 3, 1, 10, 8, tzinfo=UTC),
        datetime(2026, 12, 3, 1, 10, 8, 999000, tzinfo=UTC),
    ]
    assert timestamp("Wed, 03 Dec 2026 01:10:08 GMT") == datetime(2026, 12, 3, 1, 10, 8, tzinfo=UTC)
    got = unquoted_etags(pa.array(['"abc"', "def", "", None, '"x-2"'], pa.string())).to_pylist()
    assert got == ["abc", "def", None, None, "x-2"]
