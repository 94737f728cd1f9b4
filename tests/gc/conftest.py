"""Fixtures of the gc tests. The helpers live in gc_backend.py, so test modules import them
by a name no other conftest shares."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from gc_backend import S3_PREFIX, Backend, cli_env

from regsweep.storage.base import ObjectStore


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
