"""bench/generate.py writes Distribution's exact layout: docker-registry serves what it writes and
skopeo pulls every tag; the same seed gives the same store; the object-store path (S3) writes the
same keys as the filesystem fast path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from imagegen import RegistryClient, skopeo_copy_all
from registry_fixtures import RegistryFactory
from regsweep.storage.base import ObjectStore
from regsweep.storage.filesystem import FilesystemStore

BENCH = Path(__file__).resolve().parents[2] / "bench" / "generate.py"


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_generate", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_generate"] = module
    spec.loader.exec_module(module)
    return module


def small(gen: ModuleType) -> object:
    return gen.Params(
        repos=5,
        nested=0.4,
        tags=3,
        layers=3,
        multiarch=0.5,
        untagged=0.4,
        orphans=0.1,
        blob_size=256,
        seed=7,
    )


def generate_fs(gen: ModuleType, root: Path) -> object:
    root.mkdir(parents=True, exist_ok=True)
    return gen.generate(FilesystemStore(root), small(gen), fs_root=root)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.e2e
def test_docker_registry_serves_every_generated_tag(
    gen: ModuleType, tmp_path: Path, registry_server: RegistryFactory
) -> None:
    root = tmp_path / "store"
    stats = generate_fs(gen, root)
    reg = registry_server(root=root)
    client = RegistryClient(reg.url)
    repos = client.catalog()
    assert len(repos) == stats.repositories
    pulled = 0
    for repo in repos:
        for tag in client.tags(repo):
            skopeo_copy_all(
                f"docker://{reg.host}/{repo}:{tag}", f"dir:{tmp_path / 'pull' / repo / tag}"
            )
            pulled += 1
    assert pulled == stats.tags


def test_same_seed_same_store(gen: ModuleType, tmp_path: Path) -> None:
    generate_fs(gen, tmp_path / "a")
    generate_fs(gen, tmp_path / "b")
    assert tree(tmp_path / "a") == tree(tmp_path / "b")


def test_object_store_path_writes_the_same_objects(
    gen: ModuleType, tmp_path: Path, store_factory: object
) -> None:
    generate_fs(gen, tmp_path / "fs")
    s3: ObjectStore = store_factory("s3")  # type: ignore[operator]
    gen.generate(s3, small(gen))
    got = {o.key: s3.read(o.key, max_bytes=1 << 20) for o in s3.iter_objects("")}
    assert got == tree(tmp_path / "fs")
