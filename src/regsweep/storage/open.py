"""Open a store from a STORE argument or from a registry's own config.yml.

The SDK-backed modules are imported inside these functions, so ``import regsweep`` (and a
filesystem-only run) never imports boto3 or the Azure SDK.
"""

from __future__ import annotations

import os
import re
from typing import Any

from regsweep.errors import UsageError
from regsweep.storage.base import ObjectStore, normalize_prefix

STORE_FORMS = "a path, file://PATH, s3://BUCKET[/PREFIX] or azure://CONTAINER[/PREFIX]"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", re.DOTALL)

# Keys of the storage section that configure the registry, not a driver.
_NOT_DRIVERS = {"delete", "cache", "maintenance", "redirect", "tag"}
DEFAULT_FILESYSTEM_ROOT = "/var/lib/registry"


def open_store(spec: str) -> ObjectStore:
    """Open the store that STORE names (design.md "Command line").

    - a path, or ``file://PATH``: a directory holding ``docker/registry/v2/``;
    - ``s3://BUCKET[/PREFIX]``: endpoint and credentials from the standard AWS environment;
    - ``azure://CONTAINER[/PREFIX]``: ``AZURE_STORAGE_CONNECTION_STRING``, or
      ``AZURE_STORAGE_ACCOUNT_URL`` with the default Azure credential.

    Raises UsageError (one line) for an empty spec, an unknown scheme or a missing bucket,
    container or path, and StoreError when the store itself cannot be opened.
    """
    spec = spec.strip()
    if not spec:
        raise UsageError(f"empty STORE: give {STORE_FORMS}")
    m = _SCHEME.match(spec)
    if m is None:
        return _filesystem(spec, spec)
    scheme, rest = m.group(1).lower(), m.group(2)
    if scheme == "file":
        if not rest:
            raise UsageError(f"STORE {spec!r} has no path: use file:///path/to/root")
        return _filesystem(rest, spec)
    if scheme in ("s3", "azure"):
        name, _, prefix = rest.partition("/")
        if not name:
            what = "bucket" if scheme == "s3" else "container"
            raise UsageError(f"STORE {spec!r} has no {what} name: use {scheme}://NAME[/PREFIX]")
        url = spec.rstrip("/")
        if scheme == "s3":
            from regsweep.storage.s3 import S3Store

            store = S3Store(name, prefix, url)
            store.probe()
            return store
        from regsweep.storage.azure import AzureStore

        return AzureStore(name, prefix, url)
    raise UsageError(f"unknown STORE scheme {scheme!r} in {spec!r}: use {STORE_FORMS}")


def _filesystem(path: str, url: str) -> ObjectStore:
    from regsweep.storage.filesystem import FilesystemStore

    return FilesystemStore(path, url=url)


def open_store_from_registry_config(path: str) -> ObjectStore:
    """Open the store that a Distribution ``config.yml`` uses, as ``registry garbage-collect``
    does: the single driver of its ``storage:`` section (``filesystem``, ``s3`` or ``azure``).

    Registry-level keys of that section (``delete``, ``cache``, ``maintenance``, ``redirect``,
    ``tag``) are ignored. As in the registry, environment variables
    ``REGISTRY_STORAGE_<DRIVER>_<PARAM>`` override the file's driver parameters (deployments
    often pass secrets that way). Parameters:

    - filesystem: ``rootdirectory`` (default ``/var/lib/registry``);
    - s3: ``bucket``, ``region``, ``regionendpoint``, ``rootdirectory``, ``accesskey``,
      ``secretkey`` (both empty: the standard AWS credential chain), ``secure``,
      ``skipverify``, ``forcepathstyle`` (default: path style when ``regionendpoint`` is set);
    - azure: ``accountname``, ``accountkey``, ``container``, ``realm`` (default
      ``core.windows.net``), ``rootdirectory``, ``serviceurl`` (overrides the account URL, e.g.
      ``http://127.0.0.1:10000/devstoreaccount1`` for Azurite), and ``credentials`` of type
      ``shared_key``, ``client_secret`` or ``default_credentials``.

    Raises UsageError (one line) for a missing or unreadable file, bad YAML, no storage
    section, no driver or several, a missing required parameter, or an unsupported driver.
    """
    import yaml

    where = f"registry config {path}"
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except FileNotFoundError as e:
        raise UsageError(f"{where}: no such file") from e
    except OSError as e:
        raise UsageError(f"{where}: cannot read it ({e.strerror})") from e
    except yaml.YAMLError as e:
        first = " ".join(str(e).split())
        raise UsageError(f"{where}: not valid YAML ({first})") from e
    storage = doc.get("storage") if isinstance(doc, dict) else None
    if not isinstance(storage, dict) or not storage:
        raise UsageError(f"{where}: no storage section")
    drivers = [str(k) for k in storage if str(k).lower() not in _NOT_DRIVERS]
    if not drivers:
        raise UsageError(f"{where}: the storage section names no driver")
    if len(drivers) > 1:
        raise UsageError(f"{where}: the storage section names several drivers: {drivers}")
    driver = drivers[0]
    raw = storage[driver]
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: storage.{driver} must be a mapping of parameters")
    params = _with_env_overrides(driver, {str(k).lower(): v for k, v in raw.items()})
    kind = driver.lower()
    if kind == "filesystem":
        root = _str(params.get("rootdirectory")) or DEFAULT_FILESYSTEM_ROOT
        return _filesystem(root, root)
    if kind in ("s3", "s3aws"):
        return _s3_from_params(params, where)
    if kind == "azure":
        return _azure_from_params(params, where)
    raise UsageError(
        f"{where}: storage driver {driver!r} is not supported "
        "(regsweep supports filesystem, s3 and azure)"
    )


def _with_env_overrides(driver: str, params: dict[str, Any]) -> dict[str, Any]:
    head = f"REGISTRY_STORAGE_{driver.upper()}_"
    for name, value in os.environ.items():
        if name.startswith(head) and len(name) > len(head):
            params[name[len(head) :].lower()] = value
    return params


def _str(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _bool(value: Any, default: bool, name: str, where: str) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise UsageError(f"{where}: {name} must be true or false, not {value!r}")


def _required(params: dict[str, Any], name: str, driver: str, where: str) -> str:
    value = _str(params.get(name))
    if not value:
        raise UsageError(f"{where}: storage.{driver}.{name} is required")
    return value


def _s3_from_params(params: dict[str, Any], where: str) -> ObjectStore:
    from regsweep.storage.s3 import S3Store

    bucket = _required(params, "bucket", "s3", where)
    prefix = normalize_prefix(_str(params.get("rootdirectory")))
    endpoint = _str(params.get("regionendpoint")) or None
    secure = _bool(params.get("secure"), True, "secure", where)
    if endpoint and "://" not in endpoint:
        endpoint = ("https://" if secure else "http://") + endpoint
    force_path = params.get("forcepathstyle")
    path_style = _bool(force_path, endpoint is not None, "forcepathstyle", where)
    skip_verify = _bool(params.get("skipverify"), False, "skipverify", where)
    url = f"s3://{bucket}/{prefix}".rstrip("/")
    store = S3Store(
        bucket,
        prefix,
        url,
        endpoint_url=endpoint,
        region=_str(params.get("region")) or None,
        access_key=_str(params.get("accesskey")) or None,
        secret_key=_str(params.get("secretkey")) or None,
        force_path_style=path_style,
        use_ssl=secure,
        verify=False if skip_verify else None,
    )
    store.probe()
    return store


def _azure_from_params(params: dict[str, Any], where: str) -> ObjectStore:
    from regsweep.storage.azure import AzureStore

    container = _required(params, "container", "azure", where)
    prefix = normalize_prefix(_str(params.get("rootdirectory")))
    account = _str(params.get("accountname"))
    realm = _str(params.get("realm")) or "core.windows.net"
    service_url = _str(params.get("serviceurl"))
    if not service_url and not account:
        raise UsageError(f"{where}: storage.azure.accountname (or serviceurl) is required")
    account_url = service_url.rstrip("/") or f"https://{account}.blob.{realm}"
    creds = params.get("credentials")
    creds = creds if isinstance(creds, dict) else {}
    kind = _str(creds.get("type")).lower() or None
    account_key = _str(params.get("accountkey")) or None
    client_secret: tuple[str, str, str] | None = None
    if kind == "client_secret":
        client_secret = (
            _str(creds.get("tenantid")),
            _str(creds.get("clientid")),
            _str(creds.get("secret")),
        )
        if not all(client_secret):
            raise UsageError(
                f"{where}: credentials of type client_secret need tenantid, clientid and secret"
            )
        account_key = None
    elif kind == "default_credentials":
        account_key = None
    elif kind not in (None, "shared_key"):
        raise UsageError(f"{where}: unknown azure credentials type {kind!r}")
    url = f"azure://{container}/{prefix}".rstrip("/")
    return AzureStore(
        container,
        prefix,
        url,
        account_url=account_url,
        account_name=account or None,
        account_key=account_key,
        client_secret=client_secret,
    )
