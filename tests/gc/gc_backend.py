"""A storage backend a real registry can run on, and the environment the ``regsweep`` command
needs to open a store of each kind (used by the gc tests and their conftest)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from gc_helpers import copy_fs_root, copy_store

from registry_fixtures import RegistryFactory, RegistryServer, S3Storage, registry_config
from regsweep.storage.base import ObjectStore
from regsweep.storage.filesystem import FilesystemStore
from services import free_port


def copy_objects(src: ObjectStore, dst: ObjectStore) -> None:
    """Copy every object of ``src`` into ``dst``: server-side between two S3 stores on one
    endpoint, else by reading and writing."""
    if type(src).__name__ == type(dst).__name__ == "S3Store":
        s3src, s3dst = cast(Any, src), cast(Any, dst)
        for o in src.iter_objects(""):
            s3dst.client.copy_object(
                Bucket=s3dst.bucket,
                Key=s3dst.full_key(o.key),
                CopySource={"Bucket": s3src.bucket, "Key": s3src.full_key(o.key)},
            )
    else:
        copy_store(src, dst)


def cli_env(store: ObjectStore, request: pytest.FixtureRequest) -> dict[str, str]:
    """Environment variables with which ``regsweep ... store.url`` opens ``store``."""
    kind = type(store).__name__
    if kind == "S3Store":
        return {"AWS_ENDPOINT_URL": str(store.client.meta.endpoint_url)}  # type: ignore[attr-defined]
    if kind == "AzureStore":
        return {"AZURE_STORAGE_CONNECTION_STRING": request.getfixturevalue("azurite")}
    return {}


S3_PREFIX = "pfx"  # registries on S3 run with rootdirectory: /pfx


@dataclass
class Backend:
    """A store a docker-registry can serve: a filesystem root, or an S3 bucket on moto."""

    kind: str  # fs | s3
    store: ObjectStore
    env: dict[str, str]
    make_store: Callable[..., ObjectStore]
    tmp: Path
    registries: list[RegistryServer] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.store.url

    @property
    def root(self) -> Path | None:
        return self.store.root if isinstance(self.store, FilesystemStore) else None

    @property
    def s3(self) -> S3Storage | None:
        if self.kind != "s3":
            return None
        endpoint = str(self.store.client.meta.endpoint_url)  # type: ignore[attr-defined]
        prefix = "/" + self.store.prefix.rstrip("/")  # type: ignore[attr-defined]
        return S3Storage(endpoint, self.store.bucket, rootdirectory=prefix)  # type: ignore[attr-defined]

    def serve(self, registry_server: RegistryFactory) -> RegistryServer:
        # On S3 the registry would answer blob requests with redirects to the bucket; serve
        # them itself so plain HTTP clients see 200/404.
        extra = {"redirect": {"disable": True}} if self.kind == "s3" else None
        reg = registry_server(root=self.root, s3=self.s3, extra_storage=extra)
        self.registries.append(reg)
        return reg

    def copy(self) -> Backend:
        """A new store of the same kind with the same objects (mtimes kept on a filesystem)."""
        if self.kind == "fs":
            assert self.root is not None
            dst = self.tmp / f"copy-{len(list(self.tmp.iterdir()))}"
            copy_fs_root(self.root, dst)
            store: ObjectStore = FilesystemStore(dst)
        else:
            store = self.make_store("s3", S3_PREFIX)
            copy_objects(self.store, store)
        return Backend(self.kind, store, self.env, self.make_store, self.tmp)

    def registry_config_file(self) -> Path:
        """A docker-registry config.yml for this store (for ``garbage-collect``)."""
        cfg: dict[str, Any] = registry_config(free_port(), root=self.root, s3=self.s3)
        path = self.tmp / f"config-{len(list(self.tmp.iterdir()))}.yml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return path
