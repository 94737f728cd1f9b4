"""Real storage services on loopback for the tests, as a pytest plugin.

Loaded by ``tests/conftest.py`` (``pytest_plugins = ["services", ...]``). Fixtures:

- ``aws_env`` (session): AWS variables for moto (``AWS_ACCESS_KEY_ID=testing``, region
  ``us-east-1``, no profile, no config files, no ``AWS_ENDPOINT_URL``, no ``AWS_CA_BUNDLE``).
- ``moto_server`` (session) -> endpoint URL ``http://127.0.0.1:PORT`` of a ``moto_server``.
- ``moto_server_strict`` (session) -> endpoint URL of a second ``moto_server`` that checks
  credentials (``INITIAL_NO_AUTH_ACTION_COUNT=0``): any key pair is refused with 403.
- ``azurite`` (session) -> connection string of an Azurite blob service (well-known
  ``devstoreaccount1`` key); ``azurite_blob_endpoint`` -> ``http://127.0.0.1:PORT/devstoreaccount1``.
- ``store_factory`` (function) -> ``make(kind, prefix="")``: a fresh, empty store of kind
  ``"fs"``, ``"s3"`` or ``"azure"`` (new temp dir / bucket / container, unique names); closed
  at teardown. Servers start only when a test first asks for their kind.
- ``store`` (function, parametrized ``fs``/``s3``/``azure``) -> one fresh empty store.

Helpers: ``subprocess_env()`` (the environment without ``AWS_CA_BUNDLE``, which makes the
docker-registry S3 driver panic), ``free_port()``, ``start_multipart_upload(s3store, key)``
(a real incomplete multipart upload), ``AZURITE_ACCOUNT``/``AZURITE_KEY``.

A missing binary (``moto_server``, ``node``, ``node_modules/.bin/azurite-blob``) skips the
tests that need it, and fails them under ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from regsweep.storage.base import ObjectStore

REPO_ROOT = Path(__file__).resolve().parents[1]
AZURITE_BIN = REPO_ROOT / "node_modules" / ".bin" / "azurite-blob"
AZURITE_ACCOUNT = "devstoreaccount1"
# The emulator's documented, public well-known key.
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
READY_TIMEOUT = 60.0
STORE_KINDS = ["fs", "s3", "azure"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def subprocess_env(**extra: str) -> dict[str, str]:
    """``os.environ`` for a child process, without ``AWS_CA_BUNDLE`` (design.md: the
    docker-registry S3 driver panics when it is set), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    env.update(extra)
    return env


def missing_tool(message: str) -> None:
    """Skip, or fail under CI=true, because a service binary is not installed."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _http_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer means the server is up
    except (urllib.error.URLError, OSError):
        return False


def start_service(
    name: str, cmd: list[str], ready_url: str, log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` with its output in ``log_path`` and wait (bounded) until ``ready_url``
    answers. Fails the test session with the log's tail if it exits or never answers."""
    log = open(log_path, "wb")  # noqa: SIM115 - the child writes to it until it stops
    proc = subprocess.Popen(
        cmd,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env if env is not None else subprocess_env(),
        cwd=str(REPO_ROOT),
    )
    log.close()
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"{name} exited with {proc.returncode} while starting:\n{_log_tail(log_path)}",
                pytrace=False,
            )
        if _http_answers(ready_url):
            return proc
        time.sleep(0.1)
    stop_service(proc)
    pytest.fail(
        f"{name} did not answer on {ready_url} within {READY_TIMEOUT:.0f}s:\n{_log_tail(log_path)}",
        pytrace=False,
    )


def stop_service(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# -- AWS / moto -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def aws_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """AWS settings for moto, for the whole session, restored at the end."""
    mp = pytest.MonkeyPatch()
    empty = tmp_path_factory.mktemp("aws-config") / "none"
    mp.setenv("AWS_ACCESS_KEY_ID", "testing")
    mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
    mp.setenv("AWS_REGION", "us-east-1")
    # Never read the developer's ~/.aws, and never reach a real endpoint by accident.
    mp.setenv("AWS_CONFIG_FILE", str(empty))
    mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in (
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        # Only loopback http is used; and docker-registry's S3 driver panics when it is set.
        "AWS_CA_BUNDLE",
    ):
        mp.delenv(name, raising=False)
    no_proxy = os.environ.get("NO_PROXY", "")
    mp.setenv("NO_PROXY", ",".join(p for p in (no_proxy, "127.0.0.1", "localhost") if p))
    try:
        yield
    finally:
        mp.undo()


def _moto(name: str, tmp_path_factory: pytest.TempPathFactory, **env: str) -> Iterator[str]:
    binary = shutil.which("moto_server")
    if binary is None:
        missing_tool("moto_server is not installed: pip install -e '.[dev]' (moto[server])")
    assert binary is not None
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp(name) / f"{name}.log"
    proc = start_service(
        name,
        [binary, "-H", "127.0.0.1", "-p", str(port)],
        url + "/",
        log,
        env=subprocess_env(**env),
    )
    try:
        yield url
    finally:
        stop_service(proc)


@pytest.fixture(scope="session")
def moto_server(aws_env: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Endpoint URL of a moto S3 server on loopback (no credential checks)."""
    yield from _moto("moto_server", tmp_path_factory)


@pytest.fixture(scope="session")
def moto_server_strict(aws_env: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Endpoint URL of a moto server that authenticates every request: keys are refused."""
    yield from _moto("moto_server_strict", tmp_path_factory, INITIAL_NO_AUTH_ACTION_COUNT="0")


def start_multipart_upload(store: Any, key: str, part: bytes = b"x" * 1024) -> str:
    """Start a real multipart upload of ``key`` on an S3Store, upload one part, never complete
    it (what Distribution leaves for an abandoned upload). Returns the upload id."""
    full = store.full_key(key)
    mpu = store.client.create_multipart_upload(Bucket=store.bucket, Key=full)
    upload_id = str(mpu["UploadId"])
    store.client.upload_part(
        Bucket=store.bucket, Key=full, UploadId=upload_id, PartNumber=1, Body=part
    )
    return upload_id


# -- Azure / Azurite --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Connection string of an Azurite blob service on loopback."""
    if shutil.which("node") is None:
        missing_tool("node is not installed (Azurite needs Node.js)")
    if not AZURITE_BIN.exists():
        missing_tool(f"{AZURITE_BIN} is missing: run `npm ci` in {REPO_ROOT}")
    port = free_port()
    location = tmp_path_factory.mktemp("azurite")
    cmd = [
        str(AZURITE_BIN),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--location",
        str(location),
        "--silent",
        "--skipApiVersionCheck",
        "--loose",
        "--disableTelemetry",  # it would try to reach the internet
    ]
    endpoint = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
    proc = start_service("azurite", cmd, endpoint + "?comp=list", location / "azurite.log")
    try:
        yield (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};"
        )
    finally:
        stop_service(proc)


@pytest.fixture(scope="session")
def azurite_blob_endpoint(azurite: str) -> str:
    """``http://127.0.0.1:PORT/devstoreaccount1``: the account URL (a registry's serviceurl)."""
    for part in azurite.split(";"):
        if part.startswith("BlobEndpoint="):
            return part.split("=", 1)[1]
    raise AssertionError("no BlobEndpoint in the Azurite connection string")


# -- stores ----------------------------------------------------------------------------------


def unique_name(kind: str) -> str:
    # Valid as both an S3 bucket and an Azure container name: 3-63 lowercase letters and digits.
    return f"rs{kind}{uuid.uuid4().hex[:16]}"


@pytest.fixture
def store_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., ObjectStore]]:
    """``make(kind, prefix="")`` -> a fresh empty store of ``kind`` ("fs", "s3", "azure")."""
    made: list[ObjectStore] = []

    def make(kind: str, prefix: str = "") -> ObjectStore:
        store: ObjectStore
        if kind == "fs":
            from regsweep.storage.filesystem import FilesystemStore

            root = tmp_path_factory.mktemp("fs-store")
            if prefix:
                root = root / prefix.strip("/")
                root.mkdir(parents=True)
            store = FilesystemStore(root)
        elif kind == "s3":
            from regsweep.storage.s3 import S3Store

            endpoint = request.getfixturevalue("moto_server")
            bucket = unique_name("s3")
            s3 = S3Store(bucket, prefix, endpoint_url=endpoint)
            s3.client.create_bucket(Bucket=bucket)
            store = s3
        elif kind == "azure":
            from regsweep.storage.azure import AzureStore

            conn = request.getfixturevalue("azurite")
            container = unique_name("az")
            az = AzureStore(container, prefix, connection_string=conn)
            az.container_client.create_container()
            store = az
        else:
            raise ValueError(f"unknown store kind {kind!r}; use one of {STORE_KINDS}")
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, store_factory: Callable[..., ObjectStore]) -> ObjectStore:
    """A fresh, empty store of each kind in turn."""
    return store_factory(request.param)
