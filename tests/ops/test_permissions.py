"""Permissions: the read-only commands (scan, audit, report, gc without --apply) and a dry
``regsweep run`` never ask a store to write, move or delete; and a refused request is a one-line
error that names the permission it needed (the S3 IAM action, the Azure role)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber
from click.testing import CliRunner
from ops_helpers import Recording

from regsweep.cli.main import cli
from regsweep.clock import utcnow
from regsweep.errors import StoreError
from regsweep.storage.base import ObjectStore
from regsweep.storage.filesystem import FilesystemStore
from regsweep.storage.s3 import S3Store, make_client
from services import AZURITE_KEY, unique_name


@pytest.mark.parametrize(
    ("module", "args"),
    [
        ("scan", ["scan", "{store}", "-o", "{tmp}/snap", "--json"]),
        ("audit", ["audit", "{store}", "--verify-digests", "--json"]),
        ("report", ["report", "{store}", "-o", "{tmp}/reports", "--json"]),
        ("gc", ["gc", "{store}", "--delete-untagged", "--grace", "0s", "--json"]),
        ("gc", ["gc", "{store}", "--policy", "{tmp}/policy.yaml", "--json"]),
    ],
    ids=["scan", "audit", "report", "gc-plan", "gc-policy-plan"],
)
def test_read_only_commands_never_change_the_store(
    demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, args: list[str]
) -> None:
    (tmp_path / "policy.yaml").write_text(
        "version: 1\npolicies:\n  - name: all\n    repositories: ['glob:**']\n    rules:\n"
        "      - {name: keep-1, action: keep, select: {state: any}, when: {rank: {top: 1, by: pushed}}}\n"
        "      - {name: expire, action: delete, select: {state: any}}\n"
        "    unmatched: keep\n"
    )
    opened: list[Recording] = []

    def open_read_only(store: str | None, registry_config: str | None) -> ObjectStore:
        opened.append(Recording(FilesystemStore(str(store))))
        return opened[-1]

    monkeypatch.setattr(f"regsweep.cli.{module}.open_from_options", open_read_only)
    argv = [a.format(store=demo, tmp=tmp_path) for a in args]
    result = CliRunner().invoke(cli, argv, catch_exceptions=False)
    assert result.exit_code in (0, 1), result.output  # 1: findings, never a refused write
    assert opened and all(s.attempts == [] for s in opened)
    assert "read-only" not in result.output


def test_a_dry_run_needs_no_write_rights(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[Recording] = []

    def open_read_only(settings: Any) -> ObjectStore:
        opened.append(Recording(FilesystemStore(str(settings.store))))
        return opened[-1]

    monkeypatch.setattr("regsweep.jobs.open_job_store", open_read_only)
    result = CliRunner().invoke(
        cli, ["run", "--store", str(demo), "--dry-run", "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["failed_steps"] == []
    assert opened and opened[0].attempts == []


def _stubbed(operation: str, method: str, **kwargs: Any) -> tuple[S3Store, Stubber]:
    client = make_client(endpoint_url="http://127.0.0.1:9", access_key="a", secret_key="b")
    stub = Stubber(client)
    stub.add_client_error(method, service_error_code="AccessDenied", http_status_code=403)
    stub.activate()
    return S3Store("bucket", "", "s3://bucket", client=client), stub


@pytest.mark.parametrize(
    ("method", "call", "action"),
    [
        ("list_objects_v2", lambda s: list(s.iter_objects("docker/")), "s3:ListBucket"),
        ("get_object", lambda s: s.read("k", max_bytes=10), "s3:GetObject"),
        ("put_object", lambda s: s.write("regsweep/lock.json", b"{}"), "s3:PutObject"),
        (
            "list_multipart_uploads",
            lambda s: list(s.iter_incomplete_uploads("docker/")),
            "s3:ListBucketMultipartUploads",
        ),
    ],
)
def test_s3_refusals_name_the_iam_action(
    method: str, call: Callable[[S3Store], object], action: str
) -> None:
    store, stub = _stubbed(method, method)
    with pytest.raises(StoreError) as e:
        call(store)
    message = str(e.value)
    assert "access denied" in message and f"needs {action}" in message, message
    assert "\n" not in message
    stub.deactivate()


def test_s3_delete_refused_per_key_names_the_action() -> None:
    client = make_client(endpoint_url="http://127.0.0.1:9", access_key="a", secret_key="b")
    stub = Stubber(client)
    stub.add_response("head_object", {"ContentLength": 1})
    stub.add_response(
        "delete_objects",
        {"Errors": [{"Key": "k", "Code": "AccessDenied", "Message": "Access Denied"}]},
    )
    stub.activate()
    outcomes = S3Store("bucket", "", "s3://bucket", client=client).delete_many(["k"])
    assert outcomes[0].error is not None and "needs s3:DeleteObject" in outcomes[0].error


def test_s3_bad_credentials_name_the_listing(moto_server_strict: str) -> None:
    store = S3Store("bucket", endpoint_url=moto_server_strict, access_key="nobody", secret_key="x")
    with pytest.raises(StoreError) as e:
        store.probe()
    assert "access denied while listing the bucket" in str(e.value)
    assert "ListObjectsV2 needs s3:ListBucket" in str(e.value)
    store.close()


def test_azure_read_only_sas_names_the_contributor_role(azurite: str) -> None:
    from azure.storage.blob import (
        BlobServiceClient,
        ContainerClient,
        ContainerSasPermissions,
        generate_container_sas,
    )

    from regsweep.storage.azure import AzureStore

    service = BlobServiceClient.from_connection_string(azurite)
    name = unique_name("az")
    container = service.create_container(name)
    container.upload_blob("docker/registry/v2/x", b"data")
    sas = generate_container_sas(
        account_name=service.account_name or "devstoreaccount1",
        container_name=name,
        account_key=AZURITE_KEY,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=utcnow().replace(year=utcnow().year + 1),
    )
    reader = ContainerClient.from_container_url(f"{container.url}?{sas}")
    store = AzureStore(name, container_client=reader)
    assert [o.key for o in store.iter_objects("docker/")] == ["docker/registry/v2/x"]
    with pytest.raises(StoreError) as e:
        store.write("regsweep/lock.json", b"{}")
    message = str(e.value)
    assert "access denied while writing regsweep/lock.json" in message
    assert "Storage Blob Data Contributor" in message and "\n" not in message
    outcome = store.delete_many(["docker/registry/v2/x"])[0]
    assert outcome.deleted is False and outcome.error
    store.close()
    container.delete_container()
