"""pytest plugin: a real CNCF Distribution registry (Debian's ``docker-registry``) on loopback.

Fixtures and helpers:

- ``registry_server`` (function scope) is a factory. Each call starts one ``docker-registry
  serve`` with a generated config on a free 127.0.0.1 port, waits until ``GET /v2/`` answers, and
  returns a ``RegistryServer``; every server it started is stopped at teardown::

      def test_x(registry_server, tmp_path):
          reg = registry_server()                       # filesystem, fresh root under tmp
          reg = registry_server(root=tmp_path / "store")  # filesystem, this root
          reg = registry_server(s3=S3Storage(moto_server, "bucket", rootdirectory="/pfx"))
          requests.get(f"{reg.url}/v2/_catalog")
          result = reg.garbage_collect(dry_run=True)     # or run_garbage_collect(reg.config_path)
          assert result.deleted_blobs == {...}

- ``run_garbage_collect(config_path, dry_run=..., delete_untagged=...)`` runs
  ``docker-registry garbage-collect`` and parses what it would delete (or deleted).
- ``require_binary(name)`` returns the binary's path; a missing one skips the test, or fails it
  under ``CI=true`` so CI cannot go green by skipping (``services.missing_tool``).

The registry runs with ``services.subprocess_env()``: no ``AWS_CA_BUNDLE``, which makes its S3
driver panic.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from services import free_port, missing_tool, subprocess_env

REGISTRY_BINARY = "docker-registry"
START_TIMEOUT_S = 20.0


def require_binary(name: str) -> str:
    """Path of ``name`` on PATH; skip the test without it, or fail under CI=true."""
    path = shutil.which(name)
    if path is None:
        missing_tool(f"{name} is not installed (Debian package: {name})")
    assert path is not None
    return path


@dataclass(frozen=True)
class S3Storage:
    """Where an S3-backed registry keeps its data (a moto endpoint in tests)."""

    endpoint: str
    bucket: str
    rootdirectory: str = "/"
    region: str = "us-east-1"
    accesskey: str = "testing"
    secretkey: str = "testing"


def registry_config(
    port: int,
    *,
    root: Path | None = None,
    s3: S3Storage | None = None,
    extra_storage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The config document for one registry. No blob-descriptor cache (so a restart is not
    needed after out-of-band deletions), deletes enabled, upload purging off (tests control
    stale uploads themselves)."""
    if (root is None) == (s3 is None):
        raise ValueError("give exactly one of root= or s3=")
    storage: dict[str, Any] = {
        "delete": {"enabled": True},
        "maintenance": {"uploadpurging": {"enabled": False}},
    }
    if root is not None:
        storage["filesystem"] = {"rootdirectory": str(root)}
    else:
        assert s3 is not None
        storage["s3"] = {
            "accesskey": s3.accesskey,
            "secretkey": s3.secretkey,
            "region": s3.region,
            "regionendpoint": s3.endpoint,
            "bucket": s3.bucket,
            "rootdirectory": s3.rootdirectory,
            "secure": s3.endpoint.startswith("https:"),
            "v4auth": True,
        }
    for key, value in (extra_storage or {}).items():  # merge one level: keep uploadpurging off
        old = storage.get(key)
        storage[key] = (
            {**old, **value} if isinstance(old, dict) and isinstance(value, dict) else value
        )
    return {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": storage,
        "http": {"addr": f"127.0.0.1:{port}", "secret": "regsweep-tests"},
    }


@dataclass
class GcResult:
    """What ``docker-registry garbage-collect`` printed, parsed. In dry-run mode the sets say
    what it *would* delete."""

    returncode: int
    stdout: str
    stderr: str
    deleted_blobs: set[str] = field(default_factory=set)
    deleted_manifests: set[str] = field(default_factory=set)
    marked: int | None = None


_ELIGIBLE = re.compile(r"^(blob|manifest) eligible for deletion: (\S+)$", re.MULTILINE)
_MARKED = re.compile(r"^(\d+) blobs marked,", re.MULTILINE)


def run_garbage_collect(
    config_path: Path | str,
    *,
    dry_run: bool = False,
    delete_untagged: bool = False,
    check: bool = True,
    timeout: float = 300,
) -> GcResult:
    """Run ``docker-registry garbage-collect [--dry-run] [--delete-untagged] CONFIG``.

    The registry should be stopped (or idle) while it runs, as Distribution requires. With
    ``check`` a non-zero exit raises AssertionError carrying the output."""
    binary = require_binary(REGISTRY_BINARY)
    cmd = [binary, "garbage-collect"]
    if dry_run:
        cmd.append("--dry-run")
    if delete_untagged:
        cmd.append("--delete-untagged")
    cmd.append(str(config_path))
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=subprocess_env(), timeout=timeout, check=False
    )
    result = GcResult(proc.returncode, proc.stdout, proc.stderr)
    for kind, digest in _ELIGIBLE.findall(proc.stdout):
        (result.deleted_blobs if kind == "blob" else result.deleted_manifests).add(digest)
    if m := _MARKED.search(proc.stdout):
        result.marked = int(m.group(1))
    if check and proc.returncode != 0:
        raise AssertionError(
            f"garbage-collect exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return result


class RegistryServer:
    """One ``docker-registry serve`` process. ``url`` is ``http://127.0.0.1:PORT``, ``host`` is
    ``127.0.0.1:PORT`` (for ``docker://`` references), ``root`` the filesystem storage root (None
    on S3). ``restart()`` starts it again on the same port and config."""

    def __init__(
        self,
        workdir: Path,
        *,
        root: Path | None,
        s3: S3Storage | None,
        extra_storage: dict[str, Any] | None = None,
    ) -> None:
        self.workdir = workdir
        self.root = root
        self.s3 = s3
        self.extra_storage = extra_storage
        self.config_path = workdir / "config.yml"
        self.log_path = workdir / "registry.log"
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> RegistryServer:
        binary = require_binary(REGISTRY_BINARY)
        last_error = ""
        for _attempt in range(3):  # a free port can be taken between probe and bind
            if self.port == 0 or last_error:
                self.port = free_port()
            cfg = registry_config(
                self.port, root=self.root, s3=self.s3, extra_storage=self.extra_storage
            )
            self.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
            with open(self.log_path, "ab") as log:
                self._proc = subprocess.Popen(
                    [binary, "serve", str(self.config_path)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=subprocess_env(),
                )
            last_error = self._wait_ready()
            if not last_error:
                return self
            self.stop()
        raise RuntimeError(f"docker-registry did not start: {last_error}")

    def _wait_ready(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        assert self._proc is not None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return f"exited with {self._proc.returncode}: {self.log_tail()}"
            try:
                if requests.get(f"{self.url}/v2/", timeout=2).status_code == 200:
                    return ""
            except requests.RequestException:
                pass
            time.sleep(0.1)
        return f"no answer on {self.url}/v2/ after {START_TIMEOUT_S}s: {self.log_tail()}"

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def restart(self) -> RegistryServer:
        self.stop()
        return self.start()

    def garbage_collect(self, **kwargs: Any) -> GcResult:
        """``run_garbage_collect`` on this server's config (stop the server first if it could
        be receiving pushes)."""
        return run_garbage_collect(self.config_path, **kwargs)


class RegistryFactory:
    """Callable that starts registries; see the module docstring."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self._servers: list[RegistryServer] = []

    def __call__(
        self,
        *,
        root: Path | None = None,
        s3: S3Storage | None = None,
        extra_storage: dict[str, Any] | None = None,
    ) -> RegistryServer:
        """Start a registry on ``root`` (default: a fresh temp dir) or on ``s3``;
        ``extra_storage`` is merged into its ``storage:`` section (e.g. ``{"maintenance":
        {"readonly": {"enabled": True}}}`` or a ``cache``)."""
        workdir = self._tmp.mktemp("registry")
        if root is None and s3 is None:
            root = workdir / "storage"
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
        server = RegistryServer(workdir, root=root, s3=s3, extra_storage=extra_storage)
        self._servers.append(server)
        return server.start()

    def stop_all(self) -> None:
        for server in self._servers:
            server.stop()


@pytest.fixture
def registry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryFactory]:
    """Factory of running ``docker-registry`` servers, all stopped after the test."""
    factory = RegistryFactory(tmp_path_factory)
    try:
        yield factory
    finally:
        factory.stop_all()
