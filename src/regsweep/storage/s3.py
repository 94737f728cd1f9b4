"""Amazon S3 (and S3-compatible) backend, on boto3.

Keys of the protocol are relative to ``prefix`` (``""`` or ``"pfx/"``), which is the registry's
``rootdirectory`` with the slashes Distribution's ``s3Path`` trims (storage-layout.md §2.2).

Request costs, for whoever sizes a run:
- ``iter_objects`` and ``list_table``: one ``ListObjectsV2`` per 1000 keys (flat, no delimiter).
- ``iter_read``: one ``GetObject``, its body streamed.
- ``read``: one ``GetObject`` (the size is checked from the response headers before the body
  is read; an over-cap body is never downloaded past the first bytes the socket buffered).
- ``write``: one ``PutObject`` and one ``HeadObject`` (for the service's ``LastModified``).
- ``delete_many``: one ``HeadObject`` per key (run on a small internal thread pool), then one
  ``DeleteObjects`` per 1000 existing keys. The HEAD is how a missing key is told apart from a
  deleted one: ``DeleteObjects`` reports both as "Deleted".
- ``move``: ``HeadObject`` + ``CopyObject`` (a managed multipart copy above 5 GB) + ``DeleteObject``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import boto3
import boto3.session
import botocore.session
import pyarrow as pa
import pyarrow.compute as pc
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.utils import parse_timestamp

from regsweep.errors import ObjectNotFound, ObjectTooLarge, StoreError
from regsweep.storage.base import (
    DEFAULT_CHUNK_SIZE,
    DeleteOutcome,
    IncompleteUpload,
    ObjectInfo,
    normalize_prefix,
)
from regsweep.storage.columns import LISTED_TIME, LISTING_SCHEMA, unquoted_etags

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CopySourceTypeDef

T = TypeVar("T")

# CopyObject copies at most 5 GB in one request; above that only a multipart copy works.
MAX_SINGLE_COPY = 5 * 1024**3
DELETE_BATCH = 1000  # the DeleteObjects limit
HEAD_WORKERS = 16
# Enough for a caller's thread pool of 16-32 workers plus our own HEAD pool, without
# urllib3 discarding connections ("Connection pool is full").
MAX_POOL_CONNECTIONS = 64

_NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}
_DENIED_CODES = {
    "AccessDenied",
    "403",
    "Forbidden",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "AllAccessDisabled",
}

# The IAM action each API call needs, so a refusal names the missing permission (operations.md
# lists the minimal policies).
IAM_ACTIONS = {
    "ListObjectsV2": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "CopyObject": "s3:GetObject and s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPartCopy": "s3:GetObject and s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "DeleteObject": "s3:DeleteObject",
    "DeleteObjects": "s3:DeleteObject",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "ListParts": "s3:ListMultipartUploadParts",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
}


def _needs(operation: str | None) -> str:
    action = IAM_ACTIONS.get(operation or "")
    return f"{operation} needs {action}" if action else f"{operation or 'the request'} was refused"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _as_text(value: str) -> str:
    return value


def timestamp(value: datetime | str) -> datetime:
    """A timestamp of a response. Our clients keep them as the service wrote them (see
    make_client): ISO 8601 in listings, an HTTP date in headers; a client made elsewhere
    gives datetimes."""
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return parse_timestamp(value)  # what botocore would have done (an HTTP date, say)


def make_client(
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    session_token: str | None = None,
    force_path_style: bool | None = None,
    use_ssl: bool = True,
    verify: bool | None = None,
    connect_timeout: float = 10.0,
    read_timeout: float = 60.0,
    max_attempts: int = 5,
    max_pool_connections: int = MAX_POOL_CONNECTIONS,
) -> S3Client:
    """An S3 client. Anything left None comes from the standard AWS environment and config
    files (``AWS_ENDPOINT_URL``, ``AWS_PROFILE``, ``AWS_DEFAULT_REGION``, ...)."""
    s3_opts: Any = None
    if force_path_style is not None:
        s3_opts = {"addressing_style": "path" if force_path_style else "auto"}
    config = Config(
        retries={"max_attempts": max_attempts, "mode": "standard"},
        max_pool_connections=max_pool_connections,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        s3=s3_opts,
        # Newer botocore adds CRC checksums to every upload by default; many S3-compatible
        # stores reject them. Only send checksums where the API requires one.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    try:
        # A session of our own: the default session is not thread-safe to create clients from.
        # Its timestamps stay text: botocore parses each with dateutil, about half the CPU of
        # a listing (~50 us a key); list_table converts a page's at once in Arrow.
        core = botocore.session.get_session()
        core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_as_text)
        session = boto3.session.Session(
            botocore_session=core,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            aws_session_token=session_token,
            region_name=region,
        )
        return session.client(
            "s3",
            endpoint_url=endpoint_url,
            use_ssl=use_ssl,
            verify=verify,
            config=config,
        )
    except (BotoCoreError, ValueError) as e:
        raise StoreError(f"cannot configure an S3 client: {_one_line(str(e))}") from e


class S3Store:
    """An S3 bucket, or a prefix of one, holding ``docker/registry/v2/``.

    ``client`` is public so tests and tools can make requests the protocol does not cover
    (for example, starting a real multipart upload); ``full_key(key)`` gives its S3 key.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        url: str | None = None,
        client: S3Client | None = None,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        force_path_style: bool | None = None,
        use_ssl: bool = True,
        verify: bool | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        max_attempts: int = 5,
    ) -> None:
        if not bucket:
            raise StoreError("an S3 store needs a bucket name")
        self.bucket = bucket
        self.prefix = normalize_prefix(prefix)
        self.url = url or f"s3://{bucket}/{self.prefix}".rstrip("/")
        self._owns_client = client is None
        self._client_options: dict[str, Any] = {
            "endpoint_url": endpoint_url,
            "region": region,
            "access_key": access_key,
            "secret_key": secret_key,
            "force_path_style": force_path_style,
            "use_ssl": use_ssl,
            "verify": verify,
            "read_timeout": read_timeout,
        }
        self.client: S3Client = client or make_client(
            **self._client_options, connect_timeout=connect_timeout, max_attempts=max_attempts
        )
        self._bucket_checked = False

    def probe(self) -> None:
        """One request without retries, so a wrong endpoint, bucket or credentials fail in a
        few seconds with a one-line error, rather than after the retries meant for transient
        faults in a long run."""
        if not self._owns_client:
            return
        quick = make_client(
            **self._client_options, connect_timeout=5.0, max_attempts=1, max_pool_connections=1
        )
        try:
            quick.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)
        except (BotoCoreError, ClientError) as e:
            self._fail(e, "listing the bucket")
        finally:
            quick.close()

    # -- helpers ---------------------------------------------------------------------------

    def full_key(self, key: str) -> str:
        """The S3 key of a protocol key."""
        if not key:
            raise StoreError(f"{self.url}: empty key")
        return self.prefix + key

    def _rel(self, s3_key: str) -> str:
        return s3_key[len(self.prefix) :]

    def _endpoint(self) -> str:
        return str(getattr(self.client.meta, "endpoint_url", "") or "the default AWS endpoint")

    def _fail(self, e: Exception, doing: str) -> NoReturn:
        """Translate an SDK exception into a one-line StoreError."""
        where = self.url
        if isinstance(e, EndpointConnectionError | ConnectTimeoutError | ConnectionClosedError):
            raise StoreError(
                f"{where}: cannot connect to endpoint {self._endpoint()} ({_one_line(str(e))})"
            ) from e
        if isinstance(e, ReadTimeoutError):
            raise StoreError(
                f"{where}: timed out waiting for {self._endpoint()} while {doing}"
            ) from e
        if isinstance(e, NoCredentialsError | PartialCredentialsError):
            raise StoreError(
                f"{where}: no usable AWS credentials "
                "(set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE)"
            ) from e
        if isinstance(e, ClientError):
            err = e.response.get("Error", {})
            code = str(err.get("Code", "") or "")
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            message = _one_line(str(err.get("Message", "") or ""))
            if code == "NoSuchBucket":
                raise StoreError(f"{where}: bucket {self.bucket} does not exist") from e
            if code in _DENIED_CODES or status == 403:
                needs = _needs(getattr(e, "operation_name", None))
                raise StoreError(
                    f"{where}: access denied while {doing} ({needs}; check credentials "
                    f"and policy): {code or status}"
                ) from e
            detail = f"{code}: {message}" if message else code or f"HTTP {status}"
            raise StoreError(f"{where}: {doing} failed ({detail})") from e
        if isinstance(e, ParamValidationError):
            raise StoreError(f"{where}: invalid request while {doing}: {_one_line(str(e))}") from e
        raise StoreError(f"{where}: {doing} failed: {_one_line(str(e)) or type(e).__name__}") from e

    def _call(self, doing: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (BotoCoreError, ClientError) as e:
            self._fail(e, doing)

    @staticmethod
    def _code(e: ClientError) -> str:
        return str(e.response.get("Error", {}).get("Code", "") or "")

    def _check_bucket_after_404(self, e: ClientError, doing: str) -> None:
        """A HEAD has no body, so a missing bucket and a missing key both come back as a bare
        404. Check the bucket once per store, so a typo in the bucket name is reported as such
        instead of as a store full of missing objects."""
        if self._bucket_checked:
            return
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as be:
            if self._code(be) in _NOT_FOUND_CODES | {"NoSuchBucket"}:
                raise StoreError(f"{self.url}: bucket {self.bucket} does not exist") from e
            self._fail(be, doing)
        except BotoCoreError as be:
            self._fail(be, doing)
        self._bucket_checked = True

    def _info(self, key: str, size: int, mtime: datetime | str, etag: str | None) -> ObjectInfo:
        return ObjectInfo(
            key=key,
            size=int(size),
            last_modified=timestamp(mtime).astimezone(UTC),
            etag=etag.strip('"') if etag else None,
        )

    def _head(self, key: str, doing: str) -> ObjectInfo | None:
        """HeadObject; None when the key does not exist."""
        try:
            r = self.client.head_object(Bucket=self.bucket, Key=self.full_key(key))
        except ClientError as e:
            if self._code(e) in _NOT_FOUND_CODES:
                self._check_bucket_after_404(e, doing)
                return None
            self._fail(e, doing)
        except BotoCoreError as e:
            self._fail(e, doing)
        return self._info(key, r["ContentLength"], r["LastModified"], r.get("ETag"))

    # -- protocol --------------------------------------------------------------------------

    def iter_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix
        )
        try:
            for page in pages:
                for o in page.get("Contents", []):
                    k = o["Key"]
                    if k.endswith("/"):  # a folder marker made by a console or another tool
                        continue
                    yield self._info(self._rel(k), o["Size"], o["LastModified"], o.get("ETag"))
        except (BotoCoreError, ClientError) as e:
            self._fail(e, f"listing {prefix or '/'}")

    def list_table(self, prefixes: Sequence[str]) -> pa.Table:
        """Every object under each of ``prefixes``, as ``iter_objects`` lists them, as one
        listing table: each page's fields go into columns, not an ObjectInfo per key, and the
        keys' times are parsed in Arrow."""
        keys: list[str] = []
        sizes: list[int] = []
        times: list[datetime | str] = []
        etags: list[str | None] = []
        for prefix in prefixes:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            )
            try:
                for page in pages:
                    for o in page.get("Contents", ()):
                        keys.append(o["Key"])
                        sizes.append(o["Size"])
                        times.append(o["LastModified"])
                        etags.append(o.get("ETag"))
            except (BotoCoreError, ClientError) as e:
                self._fail(e, f"listing {prefix or '/'}")
        key = pa.array(keys, pa.string())
        table = pa.table(
            {
                "key": pc.utf8_slice_codeunits(key, len(self.prefix)),
                "size": pa.array(sizes, pa.int64()),
                "last_modified": _times(times),
                "etag": unquoted_etags(pa.array(etags, pa.string())),
                "content_md5": pa.nulls(len(keys), pa.string()),
            },
            schema=LISTING_SCHEMA,
        )
        folder = pc.ends_with(key, "/")  # a folder marker made by a console or another tool
        return table.filter(pc.invert(folder)) if pc.any(folder).as_py() else table

    def iter_subdirs(self, prefix: str) -> Iterator[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix, Delimiter="/"
        )
        try:
            for page in pages:
                for cp in page.get("CommonPrefixes", []):
                    yield self._rel(cp["Prefix"])
        except (BotoCoreError, ClientError) as e:
            self._fail(e, f"listing {prefix or '/'}")

    def iter_files(self, prefix: str) -> Iterator[ObjectInfo]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix, Delimiter="/"
        )
        try:
            for page in pages:
                for o in page.get("Contents", []):
                    k = o["Key"]
                    if k.endswith("/"):
                        continue
                    yield self._info(self._rel(k), o["Size"], o["LastModified"], o.get("ETag"))
        except (BotoCoreError, ClientError) as e:
            self._fail(e, f"listing {prefix or '/'}")

    def read(self, key: str, *, max_bytes: int) -> bytes:
        doing = f"reading {key}"
        try:
            r = self.client.get_object(Bucket=self.bucket, Key=self.full_key(key))
        except ClientError as e:
            if self._code(e) in _NOT_FOUND_CODES:
                raise ObjectNotFound(key) from e
            self._fail(e, doing)
        except BotoCoreError as e:
            self._fail(e, doing)
        body = r["Body"]
        size = int(r["ContentLength"])
        if size > max_bytes:
            body.close()
            raise ObjectTooLarge(key, size, max_bytes)
        try:
            # StreamingBody.read() checks the byte count against Content-Length and raises
            # IncompleteReadError on a short body, so a truncated object is never returned.
            data = body.read()
        except (BotoCoreError, ClientError) as e:
            self._fail(e, doing)
        finally:
            body.close()
        if len(data) != size:
            raise StoreError(f"{self.url}: {key}: got {len(data)} of {size} bytes")
        return data

    def iter_read(self, key: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        doing = f"reading {key}"
        try:
            r = self.client.get_object(Bucket=self.bucket, Key=self.full_key(key))
        except ClientError as e:
            if self._code(e) in _NOT_FOUND_CODES:
                raise ObjectNotFound(key) from e
            self._fail(e, doing)
        except BotoCoreError as e:
            self._fail(e, doing)
        body = r["Body"]
        size = int(r["ContentLength"])
        got = 0
        try:
            # iter_chunks checks the byte count against Content-Length when the body ends.
            for chunk in body.iter_chunks(chunk_size):
                got += len(chunk)
                yield chunk
        except (BotoCoreError, ClientError) as e:
            self._fail(e, doing)
        finally:
            body.close()
        if got != size:
            raise StoreError(f"{self.url}: {key}: got {got} of {size} bytes")

    def stat(self, key: str) -> ObjectInfo:
        info = self._head(key, f"stat {key}")
        if info is None:
            raise ObjectNotFound(key)
        return info

    def write(self, key: str, data: bytes) -> ObjectInfo:
        full = self.full_key(key)
        self._call(
            f"writing {key}",
            lambda: self.client.put_object(
                Bucket=self.bucket,
                Key=full,
                Body=data,
                ContentType="application/octet-stream",
            ),
        )
        # PutObject returns no LastModified; the contract wants the service's clock.
        info = self._head(key, f"stat {key}")
        if info is None:
            raise StoreError(f"{self.url}: {key} is missing right after it was written")
        return info

    def delete_many(self, keys: Sequence[str]) -> list[DeleteOutcome]:
        """Delete ``keys``; one outcome per key, in order.

        Each key is HEADed first: DeleteObjects reports a key that did not exist as deleted, and
        the contract needs ``missing=True`` for those. A key created between the HEAD and the
        delete is left alone (reported missing), which errs on the side of keeping data.
        A request that fails as a whole (network, credentials) turns into an error outcome for
        each key of that batch and of every later batch ("not attempted"); nothing is raised
        half-way, so the caller always learns exactly what was deleted.
        """
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
                outcomes.extend(self._delete_batch(batch))
            except StoreError as e:
                fatal = str(e)
                outcomes.extend(DeleteOutcome(k, deleted=False, error=fatal) for k in batch)
        return outcomes

    def _exists(self, key: str) -> bool | str:
        """True/False, or an error message that concerns this key alone. Errors that concern
        the whole store (network, credentials, a missing bucket) raise StoreError."""
        doing = f"checking {key}"
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.full_key(key))
        except ClientError as e:
            if self._code(e) in _NOT_FOUND_CODES:
                self._check_bucket_after_404(e, doing)
                return False
            try:
                self._fail(e, doing)
            except StoreError as se:
                return str(se)
        except BotoCoreError as e:
            self._fail(e, doing)
        return True

    def _delete_batch(self, batch: list[str]) -> list[DeleteOutcome]:
        for k in batch:
            self.full_key(k)  # rejects empty keys before anything is sent
        workers = min(HEAD_WORKERS, len(batch))
        if workers <= 1:
            exists = [self._exists(k) for k in batch]
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="regsweep-s3-head") as pool:
                exists = list(pool.map(self._exists, batch))
        present = sorted(
            {self.full_key(k) for k, ex in zip(batch, exists, strict=True) if ex is True}
        )
        deleted: set[str] = set()
        errors: dict[str, str] = {}
        if present:
            resp = self._call(
                "deleting objects",
                lambda: self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in present], "Quiet": False},
                ),
            )
            deleted = {d["Key"] for d in resp.get("Deleted", []) if "Key" in d}
            for err in resp.get("Errors", []):
                code = err.get("Code", "error")
                hint = f" ({_needs('DeleteObjects')})" if code in _DENIED_CODES else ""
                errors[err.get("Key", "")] = _one_line(f"{code}: {err.get('Message', '')}{hint}")
        out: list[DeleteOutcome] = []
        for k, ex in zip(batch, exists, strict=True):
            full = self.full_key(k)
            if isinstance(ex, str):
                out.append(DeleteOutcome(k, deleted=False, error=ex))
            elif ex is False:
                out.append(DeleteOutcome(k, deleted=False, missing=True))
            elif full in errors:
                out.append(DeleteOutcome(k, deleted=False, error=errors[full]))
            elif full in deleted:
                out.append(DeleteOutcome(k, deleted=True))
            else:
                out.append(
                    DeleteOutcome(k, deleted=False, error="DeleteObjects did not report this key")
                )
        return out

    def move(self, key: str, to_key: str) -> None:
        info = self._head(key, f"moving {key}")
        if info is None:
            raise ObjectNotFound(key)
        src: CopySourceTypeDef = {"Bucket": self.bucket, "Key": self.full_key(key)}
        dst = self.full_key(to_key)
        doing = f"copying {key} to {to_key}"
        if info.size <= MAX_SINGLE_COPY:
            extra: dict[str, Any] = {}
            if info.etag:
                # Copy the version we looked at, or fail rather than move a newer one.
                extra["CopySourceIfMatch"] = f'"{info.etag}"'
            self._call(
                doing,
                lambda: self.client.copy_object(
                    Bucket=self.bucket, Key=dst, CopySource=src, MetadataDirective="COPY", **extra
                ),
            )
        else:
            config = TransferConfig(multipart_threshold=MAX_SINGLE_COPY)
            self._call(doing, lambda: self.client.copy(src, self.bucket, dst, Config=config))
        copied = self._head(to_key, doing)
        if copied is None or copied.size != info.size:
            raise StoreError(f"{self.url}: copy of {key} to {to_key} did not land intact")
        self._call(
            f"deleting {key} after copying it",
            lambda: self.client.delete_object(Bucket=self.bucket, Key=self.full_key(key)),
        )

    def iter_incomplete_uploads(self, prefix: str) -> Iterator[IncompleteUpload]:
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix
        )
        try:
            for page in pages:
                for u in page.get("Uploads", []):
                    yield IncompleteUpload(
                        key=self._rel(u["Key"]),
                        upload_id=u["UploadId"],
                        initiated=timestamp(u["Initiated"]).astimezone(UTC),
                    )
        except (BotoCoreError, ClientError) as e:
            self._fail(e, f"listing multipart uploads under {prefix or '/'}")

    def abort_incomplete_upload(self, upload: IncompleteUpload) -> None:
        """Abort one multipart upload; ObjectNotFound if it no longer exists."""
        try:
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.full_key(upload.key), UploadId=upload.upload_id
            )
        except ClientError as e:
            if self._code(e) in {"NoSuchUpload", *_NOT_FOUND_CODES}:
                raise ObjectNotFound(upload.key) from e
            self._fail(e, f"aborting the upload of {upload.key}")
        except BotoCoreError as e:
            self._fail(e, f"aborting the upload of {upload.key}")

    def close(self) -> None:
        if self._owns_client:
            self.client.close()


def _times(values: list[datetime | str]) -> pa.Array:
    """Listed times as the listing schema's (UTC, truncated to the millisecond, as a datetime
    converts): in Arrow when they are ISO 8601 text with a zone, as S3 writes them, else one
    by one as ``_info`` reads them (not columns.parse_times, which reads a time without a zone
    as UTC where botocore's parser, and so ``iter_objects``, reads it as local time)."""
    if all(isinstance(v, str) for v in values):
        try:
            exact = pa.array(values, pa.string()).cast(pa.timestamp("ns", tz="UTC"))
            return exact.cast(LISTED_TIME, safe=False)
        except pa.ArrowInvalid:
            pass
    return pa.array([timestamp(v).astimezone(UTC) for v in values], LISTED_TIME)
