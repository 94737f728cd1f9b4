"""Azure Blob Storage backend, on azure-storage-blob.

Blob names are ``prefix + key``. The prefix is the registry's ``rootdirectory`` trimmed as
Distribution 3 trims it (``""`` or ``"pfx/"``). Distribution 2.x had no root directory and
wrote blob names that begin with ``/`` (``/docker/registry/v2/...``, storage-layout.md §2.3):
with an empty prefix a key may itself begin with ``/`` and names exactly that blob, so both
``iter_objects("/docker/registry/v2/")`` (D2 data) and ``iter_objects("docker/registry/v2/")``
(D3 data) work on the same store.

Request costs: ``iter_objects`` and ``list_table`` are one List Blobs per 5000 names; ``read`` one ranged Get Blob; ``iter_read`` one Get Blob per 4 MiB chunk;
``write`` one Put Blob; ``delete_many`` one Blob Batch per 256 keys (202 = deleted, 404
BlobNotFound = missing), falling back to one Delete Blob per key when the service rejects batch
requests as a whole (accounts with a hierarchical namespace, some emulators and SAS tokens);
``move`` is Get Blob Properties + Copy Blob (polled until it is no longer pending) + a
conditional Delete Blob of the source.

Credentials, in order: an explicit ``container_client``; an explicit connection string; an
explicit account URL (or account name) with an account key, a credential object, a service
principal's ``(tenant_id, client_id, secret)``, or else ``DefaultAzureCredential``; then the environment: ``AZURE_STORAGE_CONNECTION_STRING``,
``AZURE_STORAGE_ACCOUNT`` + ``AZURE_STORAGE_KEY`` (as the az CLI uses them), or
``AZURE_STORAGE_ACCOUNT_URL`` with ``DefaultAzureCredential``.
"""

from __future__ import annotations

import binascii
import os
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import requests
from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest
from azure.storage.blob import BlobPrefix, ContainerClient, ContentSettings, ExponentialRetry
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from regsweep.errors import ObjectNotFound, ObjectTooLarge, StoreError, UsageError
from regsweep.storage.base import (
    DEFAULT_CHUNK_SIZE,
    DeleteOutcome,
    IncompleteUpload,
    ObjectInfo,
    normalize_prefix,
)
from regsweep.storage.columns import LISTING_SCHEMA, parse_times

T = TypeVar("T")

DELETE_BATCH = 256  # the Blob Batch limit
LIST_PAGE = 5000  # names per List Blobs response (the service's maximum)
# Enough for a caller's thread pool of 16-32 workers without requests discarding connections.
MAX_POOL_CONNECTIONS = 64
# Copy Blob within one account is usually done when the call returns; a large blob can take a
# while. Poll with a growing delay, for at most about ten minutes.
COPY_POLL_DELAYS = [0.05 * 2**i for i in range(6)] + [2.0] * 300


def _error_code(e: BaseException) -> str:
    """The service's error code (``BlobNotFound``...); the SDK gives an enum or a string."""
    code = getattr(e, "error_code", None)
    return str(getattr(code, "value", code) or "")


def _store_wide(e: HttpResponseError) -> bool:
    """Errors that every request would hit: stop instead of failing key after key."""
    return (
        isinstance(e, ClientAuthenticationError)
        or e.status_code in (401, 403)
        or _error_code(e) == "ContainerNotFound"
    )


def _one_line(text: object) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return lines[0] if lines else ""


def _role_for(doing: str) -> str:
    """The built-in role an operation needs, so a refusal names the missing permission."""
    if doing.startswith(("listing", "reading", "checking", "stat")):
        return "reading needs the Storage Blob Data Reader role"
    return "writing, moving and deleting need the Storage Blob Data Contributor role"


def _transport(connection_timeout: float, read_timeout: float) -> RequestsTransport:
    session = requests.Session()
    # The SDK retries; urllib3 must not retry underneath it.
    adapter = HTTPAdapter(
        pool_connections=8,
        pool_maxsize=MAX_POOL_CONNECTIONS,
        max_retries=Retry(total=False, redirect=False, raise_on_status=False),
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return RequestsTransport(
        session=session,
        session_owner=True,
        connection_timeout=connection_timeout,
        read_timeout=read_timeout,
    )


def make_container_client(
    container: str,
    *,
    connection_string: str | None = None,
    account_url: str | None = None,
    account_name: str | None = None,
    account_key: str | None = None,
    credential: Any = None,
    client_secret: tuple[str, str, str] | None = None,
    retry_total: int = 3,
    connection_timeout: float = 10.0,
    read_timeout: float = 60.0,
) -> ContainerClient:
    """A ContainerClient from explicit settings or the environment (see the module docstring).
    Raises UsageError when no way to authenticate is configured."""
    opts: dict[str, Any] = {
        # The storage SDK's default backoff starts at 15 s; a dead endpoint would hang a run.
        "retry_policy": ExponentialRetry(
            initial_backoff=1, increment_base=2, retry_total=retry_total, random_jitter_range=1
        ),
        "transport": _transport(connection_timeout, read_timeout),
    }
    env = os.environ
    if account_url is None and account_name:
        account_url = f"https://{account_name}.blob.core.windows.net"
    try:
        if connection_string:
            return ContainerClient.from_connection_string(connection_string, container, **opts)
        if account_url:
            if account_key:
                name = account_name or _account_from_url(account_url)
                cred: Any = {"account_name": name, "account_key": account_key}
            elif credential is not None:
                cred = credential
            elif client_secret is not None:
                from azure.identity import ClientSecretCredential

                tenant_id, client_id, secret = client_secret
                cred = ClientSecretCredential(tenant_id, client_id, secret)
            else:
                cred = _default_credential()
            return ContainerClient(account_url, container, credential=cred, **opts)
        if env.get("AZURE_STORAGE_CONNECTION_STRING"):
            return ContainerClient.from_connection_string(
                env["AZURE_STORAGE_CONNECTION_STRING"], container, **opts
            )
        if env.get("AZURE_STORAGE_ACCOUNT") and env.get("AZURE_STORAGE_KEY"):
            name = env["AZURE_STORAGE_ACCOUNT"]
            return ContainerClient(
                f"https://{name}.blob.core.windows.net",
                container,
                credential={"account_name": name, "account_key": env["AZURE_STORAGE_KEY"]},
                **opts,
            )
        if env.get("AZURE_STORAGE_ACCOUNT_URL"):
            return ContainerClient(
                env["AZURE_STORAGE_ACCOUNT_URL"],
                container,
                credential=_default_credential(),
                **opts,
            )
    except (ValueError, AzureError) as e:
        raise StoreError(f"azure://{container}: bad Azure settings: {_one_line(e)}") from e
    raise UsageError(
        f"azure://{container}: no Azure credentials configured "
        "(set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_URL for the default "
        "Azure credential)"
    )


def _account_from_url(account_url: str) -> str:
    """The account name of ``https://NAME.blob...`` or of an emulator's ``http://host:port/NAME``."""
    from urllib.parse import urlparse

    u = urlparse(account_url)
    path = u.path.strip("/")
    if path:
        return path.split("/")[0]
    return (u.hostname or "").split(".")[0]


def _default_credential() -> Any:
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


class AzureStore:
    """An Azure Blob container, or a prefix of one, holding ``docker/registry/v2/``.

    ``container_client`` is public for tests and tools; ``blob_name(key)`` gives a key's blob.
    """

    def __init__(
        self,
        container: str,
        prefix: str = "",
        url: str | None = None,
        container_client: ContainerClient | None = None,
        *,
        connection_string: str | None = None,
        account_url: str | None = None,
        account_name: str | None = None,
        account_key: str | None = None,
        credential: Any = None,
        client_secret: tuple[str, str, str] | None = None,
        retry_total: int = 3,
        connection_timeout: float = 10.0,
        read_timeout: float = 60.0,
    ) -> None:
        if not container:
            raise StoreError("an Azure store needs a container name")
        self.container = container
        self.prefix = normalize_prefix(prefix)
        self.url = url or f"azure://{container}/{self.prefix}".rstrip("/")
        self._owns_client = container_client is None
        self.container_client: ContainerClient = container_client or make_container_client(
            container,
            connection_string=connection_string,
            account_url=account_url,
            account_name=account_name,
            account_key=account_key,
            credential=credential,
            client_secret=client_secret,
            retry_total=retry_total,
            connection_timeout=connection_timeout,
            read_timeout=read_timeout,
        )
        self.batch_delete = True  # turned off for good when the service rejects a batch

    # -- helpers ---------------------------------------------------------------------------

    def blob_name(self, key: str) -> str:
        """The blob name of a protocol key."""
        if not key:
            raise StoreError(f"{self.url}: empty key")
        return self.prefix + key

    def _rel(self, name: str) -> str:
        return name[len(self.prefix) :]

    def _endpoint(self) -> str:
        return str(self.container_client.primary_endpoint).split("?")[0]

    def _fail(self, e: Exception, doing: str) -> NoReturn:
        """Translate an SDK exception into a one-line StoreError."""
        where = self.url
        if isinstance(e, ServiceRequestError):
            raise StoreError(
                f"{where}: cannot connect to endpoint {self._endpoint()} ({_one_line(e)})"
            ) from e
        if isinstance(e, ServiceResponseError):
            raise StoreError(
                f"{where}: connection to {self._endpoint()} failed while {doing} ({_one_line(e)})"
            ) from e
        if isinstance(e, ClientAuthenticationError) and e.response is None:
            # azure.identity found no credential, or could not get a token.
            raise StoreError(f"{where}: cannot get an Azure credential: {_one_line(e)}") from e
        if isinstance(e, HttpResponseError):
            code = _error_code(e)
            if code == "ContainerNotFound":
                raise StoreError(f"{where}: container {self.container} does not exist") from e
            if isinstance(e, ClientAuthenticationError) or e.status_code in (401, 403):
                raise StoreError(
                    f"{where}: access denied while {doing} ({_role_for(doing)}; check "
                    f"credentials): {code or e.status_code}"
                ) from e
            detail = code or f"HTTP {e.status_code}"
            msg = _one_line(getattr(e, "message", "") or e)
            raise StoreError(f"{where}: {doing} failed ({detail}: {msg})") from e
        raise StoreError(f"{where}: {doing} failed: {_one_line(e) or type(e).__name__}") from e

    def _call(self, doing: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (AzureError, ValueError) as e:
            self._fail(e, doing)

    @staticmethod
    def _is_blob_missing(e: HttpResponseError) -> bool:
        return isinstance(e, ResourceNotFoundError) and _error_code(e) in ("BlobNotFound", "")

    @staticmethod
    def _etag(etag: str | None) -> str | None:
        return etag.strip('"') if etag else None

    @staticmethod
    def _md5(settings: ContentSettings | None) -> str | None:
        """Content-MD5 as hex: set by the service on a single Put Blob (how Distribution
        writes links and manifests), absent on a blob committed from blocks."""
        md5 = settings.content_md5 if settings is not None else None
        return bytes(md5).hex() if md5 else None

    # -- protocol --------------------------------------------------------------------------

    def iter_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        start = self.prefix + prefix
        try:
            for b in self.container_client.list_blobs(name_starts_with=start or None):
                if b.name.endswith("/"):  # a folder marker made by another tool
                    continue
                yield ObjectInfo(
                    key=self._rel(b.name),
                    size=int(b.size),
                    last_modified=b.last_modified.astimezone(UTC),
                    etag=self._etag(b.etag),
                    content_md5=self._md5(b.content_settings),
                )
        except AzureError as e:
            self._fail(e, f"listing {prefix or '/'}")

    def list_table(self, prefixes: Sequence[str]) -> pa.Table | None:
        """Every object under each of ``prefixes``, as ``iter_objects`` lists them, as one
        listing table, read from the raw List Blobs responses: the SDK's deserializer builds a
        model object per blob and per property, nearly all of the ~185 us of CPU a listed blob
        cost. The requests go through the client's own pipeline (credentials, retries), which
        the SDK reaches only through a private attribute. None, so that the caller lists with
        ``iter_objects`` (whose errors say what is wrong), when that attribute is missing or a
        response is not what this reads."""
        send = getattr(getattr(self.container_client, "_client", None), "_send_request", None)
        try:
            version = self.container_client.api_version
        except AttributeError:
            version = None
        if send is None or version is None:
            return None
        names: list[str] = []
        sizes: list[str] = []
        times: list[str] = []
        etags: list[str | None] = []
        md5s: list[str | None] = []
        try:
            for prefix in prefixes:
                try:
                    for name, size, when, etag, md5 in self._list_raw(send, version, prefix):
                        names.append(name)
                        sizes.append(size)
                        times.append(when)
                        etags.append(etag)
                        md5s.append(md5)
                except AzureError as e:
                    self._fail(e, f"listing {prefix or '/'}")
            return pa.table(
                {
                    "key": pc.utf8_slice_codeunits(pa.array(names, pa.string()), len(self.prefix)),
                    "size": pa.array(sizes, pa.string()).cast(pa.int64()),
                    "last_modified": parse_times(pa.array(times, pa.string())),
                    "etag": pa.array(etags, pa.string()),
                    "content_md5": pa.array(md5s, pa.string()),
                },
                schema=LISTING_SCHEMA,
            )
        except (_NotAsExpected, ET.ParseError, ValueError):  # Arrow's and base64's errors too
            return None

    def _list_raw(
        self, send: Callable[..., Any], version: str, prefix: str
    ) -> Iterator[tuple[str, str, str, str | None, str | None]]:
        """(name, size, last-modified, ETag, Content-MD5 as hex) of each blob under
        ``prefix``, page by page, as List Blobs gives them (folder markers left out)."""
        start = self.prefix + prefix
        marker = ""
        while True:
            params = {"restype": "container", "comp": "list", "maxresults": str(LIST_PAGE)}
            if start:
                params["prefix"] = start
            if marker:
                params["marker"] = marker
            request = HttpRequest(
                "GET",
                self.container_client.url,
                params=params,
                headers={"x-ms-version": version},
            )
            response = send(request)
            if response.status_code != 200:
                raise _NotAsExpected(response.status_code)
            root = ET.fromstring(response.content)
            for blob in root.iter("Blob"):
                name_el = blob.find("Name")
                props = blob.find("Properties")
                if name_el is None or props is None or not name_el.text:
                    raise _NotAsExpected("a Blob without a Name or Properties")
                name = name_el.text
                if name_el.get("Encoded") == "true":  # names with characters XML cannot hold
                    name = unquote(name)
                if name.endswith("/"):  # a folder marker made by another tool
                    continue
                md5 = props.findtext("Content-MD5")
                yield (
                    name,
                    props.findtext("Content-Length") or "",
                    props.findtext("Last-Modified") or "",
                    self._etag(props.findtext("Etag")),
                    binascii.a2b_base64(md5).hex() if md5 else None,
                )
            marker = root.findtext("NextMarker") or ""
            if not marker:
                return

    def iter_subdirs(self, prefix: str) -> Iterator[str]:
        start = self.prefix + prefix
        try:
            for item in self.container_client.walk_blobs(
                name_starts_with=start or None, delimiter="/"
            ):
                if isinstance(item, BlobPrefix):
                    yield self._rel(item.name)
        except AzureError as e:
            self._fail(e, f"listing {prefix or '/'}")

    def iter_files(self, prefix: str) -> Iterator[ObjectInfo]:
        start = self.prefix + prefix
        try:
            for item in self.container_client.walk_blobs(
                name_starts_with=start or None, delimiter="/"
            ):
                if isinstance(item, BlobPrefix) or item.name.endswith("/"):
                    continue
                yield ObjectInfo(
                    key=self._rel(item.name),
                    size=int(item.size),
                    last_modified=item.last_modified.astimezone(UTC),
                    etag=self._etag(item.etag),
                    content_md5=self._md5(item.content_settings),
                )
        except AzureError as e:
            self._fail(e, f"listing {prefix or '/'}")

    def read(self, key: str, *, max_bytes: int) -> bytes:
        name = self.blob_name(key)
        doing = f"reading {key}"
        try:
            # Ask for one byte past the cap: enough to know the blob is too large without
            # downloading it, and the Content-Range header tells the real size.
            dl = self.container_client.download_blob(name, offset=0, length=max_bytes + 1)
        except HttpResponseError as e:
            if self._is_blob_missing(e):
                raise ObjectNotFound(key) from e
            if e.status_code == 416:
                # A ranged Get Blob of an empty blob is "invalid range".
                info = self.stat(key)
                if info.size == 0:
                    return b""
            self._fail(e, doing)
        except AzureError as e:
            self._fail(e, doing)
        total = _total_size(dl.properties.content_range, dl.size)
        if total > max_bytes:
            raise ObjectTooLarge(key, total, max_bytes)
        try:
            data = dl.readall()
        except AzureError as e:
            self._fail(e, doing)
        if len(data) != total:
            raise StoreError(f"{self.url}: {key}: got {len(data)} of {total} bytes")
        return data

    def iter_read(self, key: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        name = self.blob_name(key)
        doing = f"reading {key}"
        try:
            dl = self.container_client.download_blob(name)
        except HttpResponseError as e:
            if self._is_blob_missing(e):
                raise ObjectNotFound(key) from e
            self._fail(e, doing)
        except AzureError as e:
            self._fail(e, doing)
        total = int(dl.size)
        got = 0
        try:
            # Ranged Get Blobs of the first response's ETag: a blob rewritten mid-read fails
            # (ResourceModifiedError) instead of mixing two versions.
            for chunk in dl.chunks():
                for start in range(0, len(chunk), chunk_size):
                    piece = chunk if len(chunk) <= chunk_size else chunk[start : start + chunk_size]
                    got += len(piece)
                    yield piece
        except AzureError as e:
            self._fail(e, doing)
        if got != total:
            raise StoreError(f"{self.url}: {key}: got {got} of {total} bytes")

    def stat(self, key: str) -> ObjectInfo:
        name = self.blob_name(key)
        try:
            p = self.container_client.get_blob_client(name).get_blob_properties()
        except HttpResponseError as e:
            if self._is_blob_missing(e):
                raise ObjectNotFound(key) from e
            self._fail(e, f"checking {key}")
        except AzureError as e:
            self._fail(e, f"checking {key}")
        return ObjectInfo(
            key=key,
            size=int(p.size),
            last_modified=p.last_modified.astimezone(UTC),
            etag=self._etag(p.etag),
            content_md5=self._md5(p.content_settings),
        )

    def write(self, key: str, data: bytes) -> ObjectInfo:
        name = self.blob_name(key)
        # One Put Blob of a BlockBlob (the SDK uses a single request below 64 MiB), as
        # Distribution's fixed PutContent does; it replaces a legacy AppendBlob of that name.
        r = self._call(
            f"writing {key}",
            lambda: self.container_client.get_blob_client(name).upload_blob(
                data,
                blob_type="BlockBlob",
                overwrite=True,
                content_settings=ContentSettings(content_type="application/octet-stream"),
            ),
        )
        mtime = r.get("last_modified")
        if not isinstance(mtime, datetime):
            return self.stat(key)
        return ObjectInfo(
            key=key,
            size=len(data),
            last_modified=mtime.astimezone(UTC),
            etag=self._etag(r.get("etag")),
        )

    def delete_many(self, keys: Sequence[str]) -> list[DeleteOutcome]:
        """Delete ``keys``; one outcome per key, in order (snapshots of a blob go with it).

        A request that fails as a whole for a reason other than "batch not supported"
        (network, credentials, a missing container) gives an error outcome for each key of
        that batch and of every later batch ("not attempted"); nothing is raised half-way.
        """
        for k in keys:
            self.blob_name(k)  # rejects empty keys before anything is sent
        outcomes: list[DeleteOutcome] = []
        fatal: str | None = None
        for start in range(0, len(keys), DELETE_BATCH):
            batch = list(keys[start : start + DELETE_BATCH])
            if fatal is not None:
                outcomes.extend(
                    DeleteOutcome(k, deleted=False, error=f"not attempted: {fatal}") for k in batch
                )
                continue
            try:
                if self.batch_delete:
                    result = self._delete_batch(batch)
                    if result is None:
                        self.batch_delete = False
                if not self.batch_delete:
                    result = self._delete_one_by_one(batch)
                assert result is not None
                outcomes.extend(result)
            except StoreError as e:
                fatal = str(e)
                outcomes.extend(DeleteOutcome(k, deleted=False, error=fatal) for k in batch)
        return outcomes

    def _delete_batch(self, batch: list[str]) -> list[DeleteOutcome] | None:
        """One Blob Batch request; None when the service refuses batches altogether."""
        names = [self.blob_name(k) for k in batch]
        try:
            parts = list(
                self.container_client.delete_blobs(
                    *names, delete_snapshots="include", raise_on_any_failure=False
                )
            )
        except HttpResponseError as e:
            if _store_wide(e):
                self._fail(e, "deleting blobs")
            return None  # e.g. 400/501/"FeatureNotSupported...": use single deletes instead
        except AzureError as e:
            self._fail(e, "deleting blobs")
        if len(parts) != len(batch):
            # The multipart reply did not line up with the request; do not guess.
            return None
        out: list[DeleteOutcome] = []
        for k, part in zip(batch, parts, strict=True):
            status = part.status_code
            code = part.headers.get("x-ms-error-code")
            if 200 <= status < 300:
                out.append(DeleteOutcome(k, deleted=True))
            elif status == 404 and code in (None, "", "BlobNotFound"):
                out.append(DeleteOutcome(k, deleted=False, missing=True))
            elif code == "ContainerNotFound":
                raise StoreError(f"{self.url}: container {self.container} does not exist")
            else:
                err = f"{code} (HTTP {status})" if code else f"HTTP {status}"
                out.append(DeleteOutcome(k, deleted=False, error=err))
        return out

    def _delete_one_by_one(self, batch: list[str]) -> list[DeleteOutcome]:
        out: list[DeleteOutcome] = []
        for k in batch:
            try:
                self.container_client.delete_blob(self.blob_name(k), delete_snapshots="include")
            except HttpResponseError as e:
                if self._is_blob_missing(e):
                    out.append(DeleteOutcome(k, deleted=False, missing=True))
                    continue
                if _store_wide(e):
                    self._fail(e, "deleting blobs")
                code = _error_code(e)
                err = f"{code} (HTTP {e.status_code})" if code else f"HTTP {e.status_code}"
                out.append(DeleteOutcome(k, deleted=False, error=err))
                continue
            except AzureError as e:
                self._fail(e, "deleting blobs")
            out.append(DeleteOutcome(k, deleted=True))
        return out

    def move(self, key: str, to_key: str) -> None:
        src = self.container_client.get_blob_client(self.blob_name(key))
        dst = self.container_client.get_blob_client(self.blob_name(to_key))
        doing = f"copying {key} to {to_key}"
        try:
            props = src.get_blob_properties()
        except HttpResponseError as e:
            if self._is_blob_missing(e):
                raise ObjectNotFound(key) from e
            self._fail(e, doing)
        except AzureError as e:
            self._fail(e, doing)
        # Copy the version we looked at, and delete the source only if it is still that
        # version: a blob rewritten during the move is never lost.
        copy = self._call(
            doing,
            lambda: dst.start_copy_from_url(
                src.url,
                source_etag=props.etag,
                source_match_condition=MatchConditions.IfNotModified,
            ),
        )
        status = str(copy.get("copy_status") or "")
        for delay in COPY_POLL_DELAYS:
            if status != "pending":
                break
            time.sleep(delay)
            status = str(self._call(doing, lambda: dst.get_blob_properties()).copy.status or "")
        else:
            self._call(doing, lambda: dst.abort_copy(copy))
            raise StoreError(f"{self.url}: copy of {key} to {to_key} did not finish; aborted it")
        if status != "success":
            raise StoreError(f"{self.url}: copy of {key} to {to_key} ended as {status!r}")
        copied = self._call(doing, lambda: dst.get_blob_properties())
        if int(copied.size) != int(props.size):
            raise StoreError(f"{self.url}: copy of {key} to {to_key} did not land intact")
        try:
            src.delete_blob(
                delete_snapshots="include",
                etag=props.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except ResourceModifiedError as e:
            raise StoreError(
                f"{self.url}: {key} changed while it was moved; kept both it and {to_key}"
            ) from e
        except HttpResponseError as e:
            if not self._is_blob_missing(e):
                self._fail(e, f"deleting {key} after copying it")
        except AzureError as e:
            self._fail(e, f"deleting {key} after copying it")

    def iter_incomplete_uploads(self, prefix: str) -> Iterator[IncompleteUpload]:
        # Distribution's Azure upload data is a visible AppendBlob; nothing hides here.
        return iter(())

    def abort_incomplete_upload(self, upload: IncompleteUpload) -> None:
        raise StoreError(f"{self.url}: an Azure store has no multipart uploads")

    def close(self) -> None:
        if self._owns_client:
            self.container_client.close()


def _total_size(content_range: str | None, fallback: int) -> int:
    """The total of ``bytes a-b/TOTAL``."""
    if content_range and "/" in content_range:
        tail = content_range.rsplit("/", 1)[1].strip()
        if tail.isdigit():
            return int(tail)
    return int(fallback)


class _NotAsExpected(Exception):
    """A List Blobs response that list_table does not read (an error status, an odd entry)."""
