"""Azure's column-wise listing (raw List Blobs responses) lists exactly what ``iter_objects``
(the SDK's listing) lists, page after page: keys relative to the store's prefix, sizes, times,
ETags and Content-MD5, odd names, no folder markers. Where the raw listing cannot be used, the
caller falls back to the SDK's."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest
from azure.storage.blob import BlobBlock

from regsweep.demo.generator import generate_demo
from regsweep.storage import azure
from regsweep.storage.azure import AzureStore
from regsweep.storage.base import ObjectStore
from regsweep.storage.columns import LISTING_SCHEMA, list_table, listing_table

V2 = "docker/registry/v2/"
ODD = ["a b/ü+%20&<x>.txt", "tab\there", "q?#[]", "é/é"]


def _by_key(table: pa.Table) -> list[dict[str, object]]:
    return sorted(table.to_pylist(), key=lambda r: str(r["key"]))


def _fill(store: AzureStore) -> None:
    generate_demo(store, seed=3, now=datetime(2026, 11, 20, tzinfo=UTC))
    for name in ODD:
        store.write(V2 + "repositories/odd/" + name, b"odd")
    # A folder marker, and a blob committed from blocks (no Content-MD5).
    cc = store.container_client
    cc.upload_blob(store.blob_name(V2 + "repositories/"), b"")
    blocks = cc.get_blob_client(store.blob_name(V2 + "repositories/odd/blocks"))
    blocks.stage_block("AAAA", b"part one ")
    blocks.stage_block("AAAB", b"part two")
    blocks.commit_block_list([BlobBlock("AAAA"), BlobBlock("AAAB")])


@pytest.mark.parametrize("prefix", ["", "pfx/root/"])
def test_list_table_equals_the_sdk_listing_page_after_page(
    store_factory: Callable[..., ObjectStore], prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = store_factory("azure", prefix)
    assert isinstance(store, AzureStore)
    _fill(store)
    monkeypatch.setattr(azure, "LIST_PAGE", 7)  # many pages
    prefixes = [V2 + "blobs/", V2 + "repositories/"]
    fast = store.list_table(prefixes)
    assert fast is not None
    slow = pa.concat_tables([listing_table(store.iter_objects(p)) for p in prefixes])
    assert fast.schema == LISTING_SCHEMA
    assert fast.num_rows == slow.num_rows > 50
    assert _by_key(fast) == _by_key(slow)
    keys = set(fast["key"].to_pylist())
    assert {V2 + "repositories/odd/" + n for n in ODD} <= keys
    assert V2 + "repositories/" not in keys
    md5 = dict(zip(fast["key"].to_pylist(), fast["content_md5"].to_pylist(), strict=True))
    assert md5[V2 + "repositories/odd/blocks"] is None
    assert md5[V2 + "repositories/odd/" + ODD[0]] == hashlib.md5(b"odd").hexdigest()


def test_without_a_readable_raw_listing_the_caller_uses_the_sdks(
    store_factory: Callable[..., ObjectStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No private pipeline (another SDK version), or a response it does not read: None, and
    columns.list_table lists with iter_objects instead (tested with the filesystem's)."""
    store = store_factory("azure")
    assert isinstance(store, AzureStore)
    _fill(store)

    class Response:
        status_code = 403
        content = b""

    class Refusing:
        _config = store.container_client._client._config

        def _send_request(self, request: Any, **kwargs: Any) -> Response:
            return Response()

    monkeypatch.setattr(store.container_client, "_client", Refusing())
    assert store.list_table([V2]) is None
    monkeypatch.setattr(store.container_client, "_client", None)
    assert store.list_table([V2]) is None
    monkeypatch.undo()
    assert store.list_table([V2]) is not None
    monkeypatch.setattr(AzureStore, "list_table", lambda self, prefixes: None)
    assert list_table(store, [V2]).num_rows == sum(1 for _ in store.iter_objects(V2))
