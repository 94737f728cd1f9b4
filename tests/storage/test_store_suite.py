"""One storage suite, run against every backend on real services (filesystem, moto, Azurite).

Backend-specific behaviour (batch sizes, multipart uploads, leading-slash Azure names, pruning
of empty directories) is tested here too, next to the shared contracts it refines.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import ContainerClient

from regsweep.errors import ObjectNotFound, ObjectTooLarge, StoreError, UsageError
from regsweep.storage import ObjectInfo, ObjectStore, open_store, open_store_from_registry_config
from regsweep.storage.azure import AzureStore
from regsweep.storage.filesystem import FilesystemStore
from regsweep.storage.readonly import ReadOnlyStore
from regsweep.storage.s3 import S3Store
from services import AZURITE_ACCOUNT, AZURITE_KEY, start_multipart_upload

MakeStore = Callable[..., ObjectStore]

TAG_KEYS = [
    "repositories/app/_manifests/tags/v1/current/link",
    "repositories/app/_manifests/tags/v1/index/sha256/aa/link",
    "repositories/app/_manifests/tags/v1-rc/current/link",
    "repositories/app/_manifests/tags/v1.0/current/link",
    "repositories/app/_manifests/tags/v10/current/link",
]
TAGS = "repositories/app/_manifests/tags/"


def write_all(store: ObjectStore, keys: list[str], workers: int = 16) -> None:
    """Write ``key -> key bytes`` for each key, in parallel (the stores are shared by threads)."""
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda k: store.write(k, k.encode()), keys))


def keys_of(store: ObjectStore, prefix: str = "") -> list[str]:
    return [o.key for o in store.iter_objects(prefix)]


def assert_one_line(err: BaseException) -> None:
    text = str(err)
    assert text and "\n" not in text and "\r" not in text, repr(text)


# -- the shared contracts --------------------------------------------------------------------


def test_store_satisfies_protocol(store: ObjectStore) -> None:
    assert isinstance(store, ObjectStore)
    assert list(store.iter_objects("")) == []


def test_write_read_stat_round_trip(store: ObjectStore) -> None:
    key = "docker/registry/v2/blobs/sha256/ab/abcd/data"
    data = b"sha256:" + bytes(range(256))
    before = datetime.now(UTC) - timedelta(minutes=5)
    written = store.write(key, data)
    assert written.key == key and written.size == len(data)
    assert store.read(key, max_bytes=len(data)) == data
    info = store.stat(key)
    assert info.key == key and info.size == len(data)
    assert info.last_modified.tzinfo is not None
    assert info.last_modified.utcoffset() == timedelta(0)
    assert before < info.last_modified < datetime.now(UTC) + timedelta(minutes=5)
    if isinstance(store, S3Store):
        # A single PutObject: the ETag is the MD5 of the content (storage-layout.md §2.2).
        assert info.etag == hashlib.md5(data).hexdigest()
        assert written.etag == info.etag
    elif isinstance(store, AzureStore):
        assert info.etag and '"' not in info.etag
    # Overwrite replaces the content.
    store.write(key, b"short")
    assert store.read(key, max_bytes=100) == b"short"
    assert store.stat(key).size == 5


def test_zero_byte_object(store: ObjectStore) -> None:
    store.write("a/empty", b"")
    assert store.read("a/empty", max_bytes=0) == b""
    assert store.read("a/empty", max_bytes=10) == b""
    assert store.stat("a/empty").size == 0


def test_read_cap_raises_object_too_large(store: ObjectStore) -> None:
    store.write("big", b"x" * 10)
    assert store.read("big", max_bytes=10) == b"x" * 10
    with pytest.raises(ObjectTooLarge) as exc:
        store.read("big", max_bytes=9)
    assert exc.value.size == 10 and exc.value.max_bytes == 9
    with pytest.raises(ObjectTooLarge):
        store.read("big", max_bytes=0)


def test_missing_key_raises_object_not_found(store: ObjectStore) -> None:
    store.write("present/x", b"1")
    for key in ("absent", "present/y", "present"):
        with pytest.raises(ObjectNotFound) as exc:
            store.read(key, max_bytes=100)
        assert exc.value.key == key
        with pytest.raises(ObjectNotFound):
            store.stat(key)
    with pytest.raises(ObjectNotFound):
        store.move("absent", "elsewhere")


def test_iter_objects_is_flat_exact_once_and_respects_prefix_boundaries(
    store: ObjectStore,
) -> None:
    others = ["repositories/app/_layers/sha256/bb/link", "top-level-file"]
    write_all(store, TAG_KEYS + others)

    everything = list(store.iter_objects(""))
    counts = Counter(o.key for o in everything)
    assert counts == Counter(TAG_KEYS + others)  # flat, every key exactly once
    assert all(isinstance(o, ObjectInfo) and o.size == len(o.key) for o in everything)

    # "tags/v1/" must not match the siblings v1-rc, v1.0, v10 (distribution#3142).
    assert sorted(keys_of(store, TAGS + "v1/")) == sorted(TAG_KEYS[:2])
    assert sorted(keys_of(store, TAGS + "v1-rc/")) == [TAG_KEYS[2]]
    assert sorted(keys_of(store, TAGS)) == sorted(TAG_KEYS)
    assert keys_of(store, "repositories/nope/") == []
    assert keys_of(store, "repositories/app/_manifests/tags/v2/") == []
    # A partial name is a plain "starts with" (the contract), across directory levels.
    assert sorted(keys_of(store, TAGS + "v1")) == sorted(TAG_KEYS)


def test_iter_objects_skips_directory_markers(store: ObjectStore) -> None:
    store.write("d/real", b"1")
    if isinstance(store, S3Store):
        store.client.put_object(Bucket=store.bucket, Key=store.full_key("d/marker/"), Body=b"")
    elif isinstance(store, AzureStore):
        store.container_client.upload_blob(store.blob_name("d/marker/"), b"")
    assert keys_of(store, "d/") == ["d/real"]


def test_iter_subdirs(store: ObjectStore) -> None:
    write_all(store, [*TAG_KEYS, TAGS + "file-not-dir"])
    subdirs = list(store.iter_subdirs(TAGS))
    assert sorted(subdirs) == sorted(TAGS + t for t in ("v1/", "v1-rc/", "v1.0/", "v10/"))
    assert len(subdirs) == len(set(subdirs))
    assert list(store.iter_subdirs("")) == ["repositories/"]
    assert list(store.iter_subdirs("repositories/nope/")) == []


def test_delete_many_reports_every_key_in_order(store: ObjectStore) -> None:
    keys = ["a/1", "a/2", "b/3"]
    write_all(store, keys)
    asked = ["a/1", "missing/x", "b/3", "a/2", "a/1"]
    outcomes = store.delete_many(asked)
    assert [o.key for o in outcomes] == asked
    assert [(o.deleted, o.missing, o.error) for o in outcomes[:4]] == [
        (True, False, None),
        (False, True, None),
        (True, False, None),
        (True, False, None),
    ]
    # The same key twice: gone after the first; the second is not an error.
    assert outcomes[4].error is None and (outcomes[4].deleted or outcomes[4].missing)
    assert keys_of(store) == []
    assert store.delete_many([]) == []


def test_delete_many_in_batches(store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """More keys than one batch (S3: 1000, Azure: 256): every key is reported, all are gone."""
    n = {S3Store: 1100, AzureStore: 300}.get(type(store), 300)
    keys = [f"blobs/sha256/{i % 7:02x}/{i:06d}/data" for i in range(n)]
    write_all(store, keys)
    batches: list[int] = []
    if isinstance(store, S3Store):
        real = store.client.delete_objects

        def spy_s3(**kw: Any) -> Any:
            batches.append(len(kw["Delete"]["Objects"]))
            return real(**kw)

        monkeypatch.setattr(store.client, "delete_objects", spy_s3)
    elif isinstance(store, AzureStore):
        real_az = store.container_client.delete_blobs

        def spy_az(*names: Any, **kw: Any) -> Any:
            batches.append(len(names))
            return real_az(*names, **kw)

        monkeypatch.setattr(store.container_client, "delete_blobs", spy_az)

    asked = [*keys, "blobs/never/written", keys[0] + "-not"]
    outcomes = store.delete_many(asked)
    assert [o.key for o in outcomes] == asked
    assert all(o.deleted and o.error is None for o in outcomes[:n])
    assert [(o.deleted, o.missing) for o in outcomes[n:]] == [(False, True), (False, True)]
    assert keys_of(store) == []
    if isinstance(store, S3Store):
        assert batches == [1000, 100]
    elif isinstance(store, AzureStore):
        assert batches == [256, 46]  # missing keys are asked too: 404 says so
        assert store.batch_delete, "Azurite rejected Blob Batch: the fallback was used"


def test_move_preserves_bytes_and_removes_source(store: ObjectStore) -> None:
    data = os.urandom(3000)
    store.write("repositories/app/_layers/sha256/cc/link", data)
    target = "regsweep/quarantine/run1/repositories/app/_layers/sha256/cc/link"
    store.move("repositories/app/_layers/sha256/cc/link", target)
    assert store.read(target, max_bytes=len(data)) == data
    with pytest.raises(ObjectNotFound):
        store.stat("repositories/app/_layers/sha256/cc/link")
    assert keys_of(store) == [target]
    # And back again (restore), over nothing.
    store.move(target, "repositories/app/_layers/sha256/cc/link")
    assert keys_of(store) == ["repositories/app/_layers/sha256/cc/link"]


def test_incomplete_uploads(store: ObjectStore) -> None:
    uploads = "docker/registry/v2/repositories/app/_uploads/"
    store.write(uploads + "u1/startedat", b"2024-01-01T00:00:00Z")
    if not isinstance(store, S3Store):
        assert list(store.iter_incomplete_uploads("")) == []
        return
    upload_id = start_multipart_upload(store, uploads + "u1/data")
    other_id = start_multipart_upload(
        store, "docker/registry/v2/repositories/other/_uploads/u2/data"
    )
    # The data of an upload in progress is not an object (storage-layout.md §2.2).
    assert keys_of(store, uploads) == [uploads + "u1/startedat"]
    found = list(store.iter_incomplete_uploads(uploads))
    assert [(u.key, u.upload_id) for u in found] == [(uploads + "u1/data", upload_id)]
    assert found[0].initiated.utcoffset() == timedelta(0)
    assert len(list(store.iter_incomplete_uploads(""))) == 2
    store.abort_incomplete_upload(found[0])
    assert list(store.iter_incomplete_uploads(uploads)) == []
    assert [u.upload_id for u in store.iter_incomplete_uploads("")] == [other_id]
    with pytest.raises(ObjectNotFound):
        store.abort_incomplete_upload(found[0])


def test_incomplete_uploads_under_a_prefix(store_factory: MakeStore) -> None:
    store = store_factory("s3", "pfx")
    assert isinstance(store, S3Store)
    upload_id = start_multipart_upload(store, "docker/registry/v2/x/_uploads/u/data")
    raw = store.client.list_multipart_uploads(Bucket=store.bucket)["Uploads"]
    assert [u["Key"] for u in raw] == ["pfx/docker/registry/v2/x/_uploads/u/data"]
    found = list(store.iter_incomplete_uploads("docker/"))
    assert [(u.key, u.upload_id) for u in found] == [
        ("docker/registry/v2/x/_uploads/u/data", upload_id)
    ]


def test_readonly_store_refuses_every_mutation(store: ObjectStore) -> None:
    store.write("k/1", b"one")
    ro = ReadOnlyStore(store)
    assert isinstance(ro, ObjectStore)
    assert ro.url == store.url
    assert ro.read("k/1", max_bytes=10) == b"one"
    assert ro.stat("k/1").size == 3
    assert keys_of(ro) == ["k/1"]
    assert list(ro.iter_subdirs("")) == ["k/"]
    assert list(ro.iter_incomplete_uploads("")) == []
    from regsweep.storage.base import IncompleteUpload

    attempts: list[Callable[[], object]] = [
        lambda: ro.write("k/2", b"two"),
        lambda: ro.write("k/1", b"changed"),
        lambda: ro.delete_many(["k/1"]),
        lambda: ro.delete_many([]),
        lambda: ro.move("k/1", "k/moved"),
        lambda: ro.abort_incomplete_upload(IncompleteUpload("k/1", "id", datetime.now(UTC))),
    ]
    for attempt in attempts:
        with pytest.raises(StoreError, match="read-only") as exc:
            attempt()
        assert_one_line(exc.value)
    assert keys_of(store) == ["k/1"]
    assert store.read("k/1", max_bytes=10) == b"one"


# -- backend specifics -----------------------------------------------------------------------


def test_filesystem_prunes_empty_parents(store_factory: MakeStore) -> None:
    store = store_factory("fs")
    assert isinstance(store, FilesystemStore)
    root = store.root
    store.write("a/b/c/one", b"1")
    store.write("a/keep", b"2")
    assert [o.deleted for o in store.delete_many(["a/b/c/one"])] == [True]
    assert not (root / "a" / "b").exists()
    assert (root / "a" / "keep").exists()
    store.write("x/y/z", b"3")
    store.move("x/y/z", "q/z")
    assert not (root / "x").exists()
    store.delete_many(["a/keep", "q/z"])
    assert root.is_dir() and list(root.iterdir()) == []


def test_filesystem_move_preserves_mtime(store_factory: MakeStore) -> None:
    store = store_factory("fs")
    assert isinstance(store, FilesystemStore)
    store.write("old", b"x")
    when = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    store.set_mtime("old", when)
    store.move("old", "dir/new")
    assert store.stat("dir/new").last_modified == when


def test_s3_prefix_maps_keys(store_factory: MakeStore) -> None:
    store = store_factory("s3", "/pfx/")
    assert isinstance(store, S3Store)
    store.write("docker/registry/v2/k", b"v")
    raw = store.client.list_objects_v2(Bucket=store.bucket)["Contents"]
    assert [o["Key"] for o in raw] == ["pfx/docker/registry/v2/k"]
    # Objects outside the prefix are invisible.
    store.client.put_object(Bucket=store.bucket, Key="pfx2/docker/x", Body=b"")
    store.client.put_object(Bucket=store.bucket, Key="docker/y", Body=b"")
    assert keys_of(store) == ["docker/registry/v2/k"]
    assert list(store.iter_subdirs("")) == ["docker/"]


def test_azure_leading_slash_blob_names(store_factory: MakeStore) -> None:
    """Distribution 2.x names Azure blobs "/docker/registry/v2/..." (storage-layout.md §2.3)."""
    store = store_factory("azure")
    assert isinstance(store, AzureStore)
    d2 = "/docker/registry/v2/blobs/sha256/ab/abcd/data"
    d3 = "docker/registry/v2/blobs/sha256/ab/abcd/data"
    store.write(d2, b"d2-bytes")
    store.write(d3, b"d3")
    raw = sorted(b.name for b in store.container_client.list_blobs())
    assert raw == sorted([d2, d3])  # the exact blob names, leading slash kept
    assert keys_of(store, "/docker/registry/v2/") == [d2]
    assert keys_of(store, "docker/registry/v2/") == [d3]
    assert store.read(d2, max_bytes=100) == b"d2-bytes"
    assert store.stat(d2).size == 8
    assert sorted(store.iter_subdirs("")) == ["/", "docker/"]
    assert list(store.iter_subdirs("/docker/registry/v2/blobs/")) == [
        "/docker/registry/v2/blobs/sha256/"
    ]
    moved = "/docker/registry/v2/blobs/sha256/ab/abcd/moved"
    store.move(d2, moved)
    assert store.read(moved, max_bytes=100) == b"d2-bytes"
    outcomes = store.delete_many([moved, d2, d3])
    assert [(o.deleted, o.missing) for o in outcomes] == [
        (True, False),
        (False, True),
        (True, False),
    ]
    assert list(store.container_client.list_blobs()) == []


def test_azure_prefix_maps_blob_names(store_factory: MakeStore) -> None:
    store = store_factory("azure", "/root/dir/")
    assert isinstance(store, AzureStore)
    store.write("docker/registry/v2/k", b"v")
    assert [b.name for b in store.container_client.list_blobs()] == [
        "root/dir/docker/registry/v2/k"
    ]
    assert keys_of(store) == ["docker/registry/v2/k"]


def test_azure_delete_falls_back_when_batches_are_refused(
    store_factory: MakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = store_factory("azure")
    assert isinstance(store, AzureStore)
    keys = [f"k/{i}" for i in range(300)]
    write_all(store, keys)
    calls: list[int] = []

    def refuse(*names: Any, **kw: Any) -> Any:
        calls.append(len(names))
        raise HttpResponseError(message="Blob batch is not supported for this account")

    monkeypatch.setattr(store.container_client, "delete_blobs", refuse)
    outcomes = store.delete_many([*keys, "k/missing"])
    assert calls == [256]  # tried once, then one Delete Blob per key
    assert not store.batch_delete
    assert all(o.deleted for o in outcomes[:300])
    assert (outcomes[300].deleted, outcomes[300].missing) == (False, True)
    assert keys_of(store) == []


# -- opening stores --------------------------------------------------------------------------


def test_open_store_parses_each_form(
    tmp_path: Path,
    moto_server: str,
    azurite: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fs = open_store(str(tmp_path))
    assert isinstance(fs, FilesystemStore) and fs.root == tmp_path
    fs2 = open_store(f"file://{tmp_path}")
    assert isinstance(fs2, FilesystemStore) and fs2.root == tmp_path
    assert fs2.url == f"file://{tmp_path}"

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    boto3.client("s3").create_bucket(Bucket="open-store-bucket")
    s3 = open_store("s3://open-store-bucket/some/prefix/")
    assert isinstance(s3, S3Store)
    assert (s3.bucket, s3.prefix) == ("open-store-bucket", "some/prefix/")
    s3.write("docker/registry/v2/x", b"x")
    listed = boto3.client("s3").list_objects_v2(Bucket="open-store-bucket")["Contents"]
    assert [o["Key"] for o in listed] == ["some/prefix/docker/registry/v2/x"]
    s3.close()
    bare = open_store("s3://open-store-bucket")
    assert isinstance(bare, S3Store) and bare.prefix == ""
    bare.close()

    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite)
    ContainerClient.from_connection_string(azurite, "open-store-container").create_container()
    az = open_store("azure://open-store-container/pfx")
    assert isinstance(az, AzureStore)
    assert (az.container, az.prefix, az.url) == (
        "open-store-container",
        "pfx/",
        "azure://open-store-container/pfx",
    )
    az.write("docker/registry/v2/y", b"y")
    assert az.read("docker/registry/v2/y", max_bytes=1) == b"y"
    az.close()


@pytest.mark.parametrize(
    "spec",
    ["", "   ", "gs://bucket/x", "swift://c", "s3://", "s3:///prefix", "azure://", "file://"],
)
def test_open_store_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(UsageError) as exc:
        open_store(spec)
    assert_one_line(exc.value)


def test_open_store_azure_without_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "AZURE_STORAGE_CONNECTION_STRING",
        "AZURE_STORAGE_ACCOUNT_URL",
        "AZURE_STORAGE_ACCOUNT",
        "AZURE_STORAGE_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(UsageError, match="AZURE_STORAGE_CONNECTION_STRING") as exc:
        open_store("azure://container")
    assert_one_line(exc.value)


def test_sdk_modules_are_imported_lazily() -> None:
    import subprocess
    import sys

    code = (
        "import sys, regsweep, regsweep.storage; "
        "from regsweep.storage import open_store; open_store(sys.argv[1]); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'azure')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr


# -- registry config.yml ---------------------------------------------------------------------


def write_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yml"
    path.write_text(text)
    return str(path)


REGISTRY_LEVEL_KEYS = """
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
  redirect:
    disable: true
"""


def test_registry_config_filesystem(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    root.mkdir()
    path = write_config(
        tmp_path,
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}\n{REGISTRY_LEVEL_KEYS}"
        "http:\n  addr: 127.0.0.1:5000\n",
    )
    store = open_store_from_registry_config(path)
    assert isinstance(store, FilesystemStore) and store.root == root


def test_registry_config_filesystem_default_root(tmp_path: Path) -> None:
    path = write_config(tmp_path, "version: 0.1\nstorage:\n  filesystem: {}\n")
    if Path("/var/lib/registry").is_dir():
        store = open_store_from_registry_config(path)
        assert isinstance(store, FilesystemStore) and store.root == Path("/var/lib/registry")
    else:
        with pytest.raises(StoreError, match="/var/lib/registry"):
            open_store_from_registry_config(path)


def test_registry_config_env_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "from-env"
    root.mkdir()
    path = write_config(tmp_path, "storage:\n  filesystem:\n    rootdirectory: /nonexistent\n")
    monkeypatch.setenv("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", str(root))
    store = open_store_from_registry_config(path)
    assert isinstance(store, FilesystemStore) and store.root == root


def test_registry_config_s3(
    tmp_path: Path, moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Credentials come from the file, not the environment.
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    bucket = "regcfg-s3-bucket"
    boto3.client(
        "s3", endpoint_url=moto_server, aws_access_key_id="t", aws_secret_access_key="t"
    ).create_bucket(Bucket=bucket)
    path = write_config(
        tmp_path,
        f"""version: 0.1
storage:
  s3:
    accesskey: testing
    secretkey: testing
    region: us-east-1
    regionendpoint: {moto_server}
    bucket: {bucket}
    rootdirectory: /pfx
    secure: false
    forcepathstyle: true
    chunksize: 5242880
{REGISTRY_LEVEL_KEYS}""",
    )
    store = open_store_from_registry_config(path)
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix, store.url) == (bucket, "pfx/", f"s3://{bucket}/pfx")
    store.write("docker/registry/v2/repositories/app/_layers/sha256/aa/link", b"sha256:aa")
    raw = store.client.list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in raw] == [
        "pfx/docker/registry/v2/repositories/app/_layers/sha256/aa/link"
    ]
    assert keys_of(store, "docker/") == [
        "docker/registry/v2/repositories/app/_layers/sha256/aa/link"
    ]
    store.close()


def test_registry_config_azure(tmp_path: Path, azurite: str, azurite_blob_endpoint: str) -> None:
    """Azurite is reached through ``serviceurl`` (Distribution 3's parameter for a custom
    endpoint), with Azurite's well-known account name and key."""
    container = "regcfg-azure-container"
    ContainerClient.from_connection_string(azurite, container).create_container()
    path = write_config(
        tmp_path,
        f"""version: 0.1
storage:
  azure:
    accountname: {AZURITE_ACCOUNT}
    accountkey: {AZURITE_KEY}
    container: {container}
    realm: core.windows.net
    serviceurl: {azurite_blob_endpoint}
    rootdirectory: /az/root/
{REGISTRY_LEVEL_KEYS}""",
    )
    store = open_store_from_registry_config(path)
    assert isinstance(store, AzureStore)
    assert (store.container, store.prefix) == (container, "az/root/")
    store.write("docker/registry/v2/k", b"v")
    raw = ContainerClient.from_connection_string(azurite, container)
    assert [b.name for b in raw.list_blobs()] == ["az/root/docker/registry/v2/k"]
    assert store.read("docker/registry/v2/k", max_bytes=1) == b"v"
    store.close()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "no such file"),
        ("version: 0.1\nhttp:\n  addr: :5000\n", "no storage section"),
        ("storage: filesystem\n", "no storage section"),
        ("storage:\n  delete:\n    enabled: true\n", "names no driver"),
        ("storage:\n  gcs:\n    bucket: b\n", "'gcs' is not supported"),
        ("storage:\n  swift:\n    container: c\n", "'swift' is not supported"),
        ("storage:\n  inmemory:\n", "'inmemory' is not supported"),
        ("storage:\n  filesystem: {}\n  s3: {bucket: b}\n", "several drivers"),
        ("storage:\n  s3:\n    region: us-east-1\n", "storage.s3.bucket is required"),
        ("storage:\n  azure:\n    accountname: a\n", "storage.azure.container is required"),
        ("storage:\n  s3: {bucket: b, secure: maybe}\n", "secure must be true or false"),
        ("storage: [unclosed\n", "not valid YAML"),
    ],
)
def test_registry_config_errors(tmp_path: Path, text: str | None, message: str) -> None:
    path = str(tmp_path / "config.yml") if text is None else write_config(tmp_path, text)
    with pytest.raises(UsageError, match=message) as exc:
        open_store_from_registry_config(path)
    assert_one_line(exc.value)


# -- service failures ------------------------------------------------------------------------


def test_wrong_endpoint_is_a_quick_one_line_store_error(aws_env: None, azurite: str) -> None:
    # No retries, short connect timeouts: the test is about the message, and about not hanging.
    s3 = S3Store("bucket", endpoint_url="http://127.0.0.1:1", max_attempts=1, connect_timeout=2)
    conn = azurite.split("BlobEndpoint=")[0] + f"BlobEndpoint=http://127.0.0.1:1/{AZURITE_ACCOUNT};"
    az = AzureStore("container", connection_string=conn, retry_total=0, connection_timeout=2)
    for store in (s3, az):
        attempts: list[Callable[[], object]] = [
            lambda s=store: list(s.iter_objects("")),
            lambda s=store: s.read("k", max_bytes=10),
            lambda s=store: s.stat("k"),
            lambda s=store: s.write("k", b"v"),
        ]
        for attempt in attempts:
            started = time.monotonic()
            with pytest.raises(
                StoreError, match=re.escape("cannot connect to endpoint http://127.0.0.1:1")
            ) as e:
                attempt()
            assert not isinstance(e.value, ObjectNotFound)
            assert_one_line(e.value)
            assert time.monotonic() - started < 10
        # A batch delete reports the failure on every key rather than raising half-way.
        outcomes = store.delete_many(["a", "b"])
        assert [o.key for o in outcomes] == ["a", "b"]
        assert all(o.error and not o.deleted and "\n" not in o.error for o in outcomes)
        store.close()


def test_bad_credentials_are_a_one_line_store_error(moto_server_strict: str, azurite: str) -> None:
    s3 = S3Store(
        "bucket",
        endpoint_url=moto_server_strict,
        access_key="AKIAWRONG",
        secret_key="wrong",
        max_attempts=1,
    )
    bad_key = AZURITE_KEY.replace("Eby8", "Zzz9")
    az = AzureStore(
        "container", connection_string=azurite.replace(AZURITE_KEY, bad_key), retry_total=0
    )
    for store in (s3, az):
        for attempt in (
            lambda s=store: list(s.iter_objects("")),
            lambda s=store: s.read("k", max_bytes=10),
            lambda s=store: s.stat("k"),
            lambda s=store: s.write("k", b"v"),
        ):
            with pytest.raises(StoreError, match="access denied") as e:
                attempt()
            assert not isinstance(e.value, ObjectNotFound)
            assert_one_line(e.value)
        outcomes = store.delete_many(["a"])
        assert outcomes[0].error and "access denied" in outcomes[0].error
        store.close()


def test_missing_bucket_or_container_is_named(moto_server: str, azurite: str) -> None:
    s3 = S3Store("no-such-bucket-here", endpoint_url=moto_server)
    az = AzureStore("no-such-container", connection_string=azurite)
    for store, what in ((s3, "bucket"), (az, "container")):
        for attempt in (
            lambda s=store: list(s.iter_objects("")),
            lambda s=store: s.read("k", max_bytes=10),
            lambda s=store: s.stat("k"),
        ):
            with pytest.raises(StoreError, match=f"{what} .* does not exist") as e:
                attempt()
            assert not isinstance(e.value, ObjectNotFound)
            assert_one_line(e.value)
        store.close()
