"""Fixtures of the gc tests. The helpers live in gc_backend.py, so test modules import them
by a name no other conftest shares."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from gc_backend import S3_PREFIX, Backend, cli_env

from regsweep.clock import utcnow
from regsweep.demo.generator import generate_demo
from regsweep.scan.scanner import scan
from regsweep.scan.snapshot import Snapshot
from regsweep.storage.base import ObjectStore
from regsweep.storage.filesystem import FilesystemStore


@pytest.fixture(params=["fs", "s3"])
def backend(
    request: pytest.FixtureRequest,
    store_factory: Callable[..., ObjectStore],
    tmp_path_factory: pytest.TempPathFactory,
) -> Backend:
    store = store_factory(request.param, S3_PREFIX if request.param == "s3" else "")
    return Backend(
        request.param,
        store,
        cli_env(store, request),
        store_factory,
        tmp_path_factory.mktemp("backend"),
    )


@pytest.fixture(scope="module")
def snap(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    """A scan of the demo store, pushed 30 days ago (one per test module)."""
    root = tmp_path_factory.mktemp("demo-snapshot") / "registry"
    root.mkdir()
    generate_demo(FilesystemStore(root), now=utcnow() - timedelta(days=30))
    return scan(FilesystemStore(root))
