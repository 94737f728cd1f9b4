"""deploy/: the Kubernetes manifests parse and hold what a safe scheduled run needs; the config
and policy they ship are valid; the Dockerfile runs as a non-root user."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from regsweep.config import resolve_settings
from regsweep.retention import load_policy

DEPLOY = Path(__file__).parents[2] / "deploy"
K8S = DEPLOY / "kubernetes"


def documents(name: str) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all((K8S / name).read_text()) if d is not None]
    assert docs and all(isinstance(d, dict) for d in docs)
    return docs


def one(kind: str) -> dict[str, Any]:
    found = [
        d for p in sorted(K8S.glob("*.yaml")) for d in documents(p.name) if d.get("kind") == kind
    ]
    assert len(found) == 1, kind
    return found[0]


def test_every_manifest_parses_with_api_version_kind_and_name() -> None:
    files = sorted(K8S.glob("*.yaml"))
    assert {p.name for p in files} >= {"cronjob.yaml", "configmap.yaml", "secret.example.yaml"}
    for p in files:
        for d in documents(p.name):
            assert d.get("apiVersion") and d.get("kind"), p.name
            if d["kind"] != "Kustomization":
                assert d["metadata"]["name"], p.name
    kustomization = one("Kustomization")
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource


def test_cronjob_is_safe_to_schedule() -> None:
    cron = one("CronJob")
    spec = cron["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert len(spec["schedule"].split()) == 5
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] in ("Never", "OnFailure")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    (container,) = pod["containers"]
    assert container["args"][0] == "run"
    resources = container["resources"]
    for part in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[part]), part
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True

    # Credentials from the Secret, through envFrom.
    secret = one("Secret")
    refs = [e["secretRef"]["name"] for e in container["envFrom"] if "secretRef" in e]
    assert refs == [secret["metadata"]["name"]]

    # The config file from the ConfigMap, at the path REGSWEEP_CONFIG names.
    config_map = one("ConfigMap")
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_volume = next(v for v in volumes.values() if "configMap" in v)
    assert config_volume["configMap"]["name"] == config_map["metadata"]["name"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == config_volume["name"])
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    config_path = Path(env["REGSWEEP_CONFIG"])
    assert config_path.parent == Path(mount["mountPath"])
    assert config_path.name in config_map["data"]

    # Every mount has a volume; an example volume holds a filesystem registry's storage, and
    # /tmp is writable although the root filesystem is not.
    for m in container["volumeMounts"]:
        assert m["name"] in volumes, m
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert "persistentVolumeClaim" in volumes[mounts["/var/lib/registry"]]
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_configmap_holds_a_valid_config_and_policy(tmp_path: Path) -> None:
    data = one("ConfigMap")["data"]
    etc = tmp_path / "etc" / "regsweep"
    etc.mkdir(parents=True)
    for name, text in data.items():
        (etc / name).write_text(text)
    settings = resolve_settings({}, {}, etc / "regsweep.yaml")
    assert settings.store == "/var/lib/registry" and settings.mode == "quarantine"
    assert settings.log_format == "json" and settings.report_dir
    assert settings.policy == "/etc/regsweep/policy.yaml"
    load_policy(etc / "policy.yaml")


def test_secret_example_has_no_real_credentials() -> None:
    data = one("Secret")["stringData"]
    assert "AWS_ACCESS_KEY_ID" in data and "AWS_SECRET_ACCESS_KEY" in data
    assert data["AWS_SECRET_ACCESS_KEY"] == "replace-me"


def test_dockerfile_runs_as_a_non_root_user_with_the_regsweep_entrypoint() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
    assert froms and all(f.startswith("python:3.11-slim") for f in froms)
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users, "no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert user.isdigit()  # numeric, so runAsNonRoot can check it
    assert re.search(r'^ENTRYPOINT \["regsweep"\]$', text, re.MULTILINE)
    assert re.search(r"^COPY src \./src$", text, re.MULTILINE)  # the repository's copy
    assert (
        str(
            one("CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]["securityContext"][
                "runAsUser"
            ]
        )
        == user
    )


@pytest.mark.parametrize("name", ["pyproject.toml", "README.md", "src/"])
def test_dockerignore_keeps_what_the_build_copies(name: str) -> None:
    ignore = (DEPLOY.parent / ".dockerignore").read_text().splitlines()
    assert f"!{name}" in ignore
