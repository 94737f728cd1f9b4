"""``regsweep policy check|import`` and ``regsweep gc --policy`` from the outside (CliRunner)."""

from __future__ import annotations

import json
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from retention_helpers import Layout, tiny

from regsweep.cli.main import cli
from regsweep.clock import utcnow
from regsweep.retention import loads_policy
from regsweep.scan.graph import Graph

DAY = timedelta(days=1)


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    return path


BAD_YAML = """
version: 1
settings:
  min_age: 0s
policies:
  - name: apps
    repositories: ["glob:apps/**"]
    rules:
      - name: keep-newest
        action: keep
        when:
          rank: {top: 3}
      - name: expire
        action: delete
        select: {tags: {any: ["re:(unclosed"]}}
        when: {older_then: {age: 14d}}
"""


def test_policy_check_errors_name_field_and_line(tmp_path: Path) -> None:
    f = _write(tmp_path / "bad.yml", BAD_YAML)
    result = CliRunner().invoke(cli, ["policy", "check", str(f)])
    assert result.exit_code == 2, result.output
    err = result.stderr
    assert f"{f}:11: policies[0].rules[0].when.rank: rank needs by:" in err
    assert f"{f}:14: policies[0].rules[1].select.tags.any[0]: invalid re '(unclosed'" in err
    assert f"{f}:15: policies[0].rules[1].when.older_then: unknown field 'older_then'" in err
    assert "did you mean 'older_than'?" in err
    assert "Traceback" not in result.output


def test_policy_check_toml_errors_name_field_and_line(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "bad.toml",
        """
        version = 1
        [[policies]]
        name = "apps"
        repositories = ["glob:apps/**"]
        [[policies.rules]]
        name = "expire"
        action = "remove"
        """,
    )
    result = CliRunner().invoke(cli, ["policy", "check", str(f)])
    assert result.exit_code == 2
    assert f"{f}:7: policies[0].rules[0].action: expected one of keep, delete; got 'remove'" in (
        result.stderr
    )


def test_policy_check_warns_about_dangerous_rules(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "risky.yml",
        """
        version: 1
        settings: {min_age: 1h}
        policies:
          - name: ci
            repositories: ["glob:**"]
            precedence: first-match
            unmatched: delete
            rules:
              - name: drop-builds
                action: delete
                select: {tags: {any: ["glob:build-*"]}}
              - name: keep-release-builds
                action: keep
                select: {tags: {any: ["glob:build-release-*"]}}
        """,
    )
    result = CliRunner().invoke(cli, ["policy", "check", str(f)])
    assert result.exit_code == 0, result.output
    err = result.stderr
    assert (
        f"{f}:9: policies[0].rules[0]: warning: delete rule 'drop-builds' has no older_than" in err
    )
    assert (
        f"{f}:7: policies[0].unmatched: warning: policy 'ci': unmatched: delete without a catch-all keep rule"
        in err
    )
    assert (
        f"{f}:14: policies[0].rules[1].select: warning: first-match: delete rule 'drop-builds'"
        in err
    )
    assert "valid (1 policy, 2 rules, 3 warnings)" in result.stdout
    strict = CliRunner().invoke(cli, ["policy", "check", "--strict", str(f)])
    assert strict.exit_code == 1


def test_policy_check_with_a_store_evaluates(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "store")
    now = utcnow()
    for i in range(4):
        layout.push("app", tiny(f"b{i}"), [f"build-{i}"], age=(40 - i) * DAY, now=now)
    f = _write(
        tmp_path / "p.yml",
        """
        version: 1
        settings: {guards: {max_delete_fraction: 0.9}}
        policies:
          - name: all
            repositories: ["glob:**"]
            rules:
              - {name: old, action: delete, select: {state: any}, when: {older_than: {age: 30d}}}
        """,
    )
    result = CliRunner().invoke(
        cli, ["policy", "check", str(f), "--store", str(layout.root), "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["valid"] and doc["evaluation"]["tags"] == {"keep": 1, "delete": 3}
    assert any("3 of 4 tags would go" in w["message"] for w in doc["warnings"])


ECR_JSON = {
    "rules": [
        {
            "rulePriority": 1,
            "description": "Keep last 2 release images",
            "selection": {
                "tagStatus": "tagged",
                "tagPatternList": ["v*"],
                "countType": "imageCountMoreThan",
                "countNumber": 2,
            },
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 2,
            "selection": {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 14,
            },
            "action": {"type": "expire"},
        },
    ]
}


def test_policy_import_ecr_writes_a_valid_policy(tmp_path: Path) -> None:
    src = tmp_path / "ecr.json"
    src.write_text(json.dumps(ECR_JSON))
    out = tmp_path / "policy.yml"
    result = CliRunner().invoke(
        cli,
        [
            "policy",
            "import",
            "--from",
            "ecr",
            str(src),
            "-o",
            str(out),
            "--repository",
            "exact:app",
        ],
    )
    assert result.exit_code == 0, result.output
    pf = loads_policy(out.read_text())
    pol = pf.policies[0]
    assert (pol.options.unit, pol.options.precedence) == ("artifact", "first-match")
    assert [r.name for r in pol.rules] == ["p1", "p2"]
    assert pf.settings.min_age == timedelta(hours=24)  # our margins stay on without --exact
    check = CliRunner().invoke(cli, ["policy", "check", str(out)])
    assert check.exit_code == 0, check.output


def test_policy_import_rejects_what_ecr_rejects(tmp_path: Path) -> None:
    bad = json.loads(json.dumps(ECR_JSON))
    bad["rules"][1]["selection"]["tagPrefixList"] = ["x"]
    src = tmp_path / "ecr.json"
    src.write_text(json.dumps(bad))
    result = CliRunner().invoke(cli, ["policy", "import", "--from", "ecr", str(src)])
    assert result.exit_code == 2
    assert (
        "rules[1].selection.tagPrefixList: tagStatus untagged must omit tag lists" in result.stderr
    )


def test_policy_import_gitlab_to_stdout(tmp_path: Path) -> None:
    src = tmp_path / "gitlab.yml"
    src.write_text("keep_n: 10\nolder_than: 90d\nname_regex_delete: '.*'\nname_regex_keep: 'v.+'\n")
    result = CliRunner().invoke(cli, ["policy", "import", "--from", "gitlab", str(src), "--exact"])
    assert result.exit_code == 0, result.output
    pf = loads_policy(result.stdout)
    assert [r.name for r in pf.policies[0].rules] == ["keep-regex", "keep-n", "remove"]
    assert pf.settings.min_age == timedelta(0)


# -- gc --policy -----------------------------------------------------------------------------------

GC_POLICY = """
version: 1
settings: {min_age: 1d, guards: {max_delete_fraction: 0.9}}
policies:
  - name: app
    repositories: ["glob:**"]
    rules:
      - name: keep-2-releases
        action: keep
        select: {tags: {any: ["semver:>=1.0.0"]}}
        when: {rank: {top: 2, by: semver}}
      - name: expire
        action: delete
        select: {state: any}
        when: {older_than: {age: 7d}}
"""


@pytest.fixture
def app_layout(tmp_path: Path) -> Layout:
    layout = Layout(tmp_path / "store")
    now = utcnow()
    for i, tag in enumerate(["v1.9.3", "v1.10.0", "v1.2.0", "ci-7"]):
        layout.push("app", tiny(f"app-{tag}"), [tag], age=(30 - i) * DAY, now=now)
    layout.push("app", tiny("app-untagged"), age=20 * DAY, now=now)
    return layout


def test_gc_policy_preview(app_layout: Layout, tmp_path: Path) -> None:
    f = _write(tmp_path / "p.yml", GC_POLICY)
    before = sorted(p for p in app_layout.root.rglob("*") if p.is_file())
    result = CliRunner().invoke(
        cli, ["gc", str(app_layout.root), "--policy", str(f), "--grace", "0s"]
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "delete untagged" in out
    assert f"retention policy {f}" in out
    assert "app: tags that go" in out
    lines = {
        line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and line.split()
    }
    assert "rule expire" in lines["v1.2.0"]
    assert "ci-7" not in lines  # the newest tag of the repository: guard keep_newest_per_repo
    assert "v1.10.0" not in lines and "v1.9.3" not in lines
    assert "dry run: nothing was changed" in out
    assert sorted(p for p in app_layout.root.rglob("*") if p.is_file()) == before

    js = CliRunner().invoke(
        cli, ["gc", str(app_layout.root), "--policy", str(f), "--grace", "0s", "--json"]
    )
    assert js.exit_code == 0, js.output
    doc = json.loads(js.stdout)
    ret = doc["retention"]
    assert ret["tags"] == {"keep": 3, "delete": 1}
    assert ret["untagged"] == {"keep": 0, "delete": 1}
    assert ret["decided_by"]["keep:guard"] == 1  # ci-7
    app = ret["repositories"]["app"]
    assert {e["tag"]: e["rule"] for e in app["expired_tags"]} == {"v1.2.0": "expire"}
    # the untagged image, and v1.2.0's manifest once its only tag is gone
    assert app["untagged_removed"] == 2 and app["bytes_freed"] == doc["bytes"]
    assert doc["summary"]["tag"]["count"] == 1 and doc["applied"] is False


def test_gc_policy_builds_the_reference_graph_once(
    app_layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The policy's evaluation, the mark, the plan and the preview share one graph of the
    snapshot: each building its own cost time and, in the preview, the run's peak."""
    built: list[Graph] = []
    original = Graph.from_snapshot.__func__  # type: ignore[attr-defined]

    def counted(cls: type[Graph], snap: Any) -> Graph:
        built.append(original(cls, snap))
        return built[-1]

    monkeypatch.setattr(Graph, "from_snapshot", classmethod(counted))
    f = _write(tmp_path / "p.yml", GC_POLICY)
    args = ["gc", str(app_layout.root), "--policy", str(f), "--grace", "0s"]
    for extra in ([], ["--json"]):
        built.clear()
        result = CliRunner().invoke(cli, [*args, *extra])
        assert result.exit_code == 0, result.output
        assert len(built) == 1, extra


def test_gc_policy_rank_is_shown(app_layout: Layout, tmp_path: Path) -> None:
    f = _write(
        tmp_path / "p.yml",
        """
        version: 1
        settings: {min_age: 0s, guards: {max_delete_fraction: null}}
        policies:
          - name: app
            repositories: ["glob:**"]
            rules:
              - name: beyond-1
                action: delete
                select: {tags: {any: ["semver:>=1.0.0"]}}
                when: {rank: {beyond: 1, by: semver}}
        """,
    )
    result = CliRunner().invoke(
        cli, ["gc", str(app_layout.root), "--policy", str(f), "--grace", "0s"]
    )
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stdout.splitlines() if x.strip().startswith("v1.2.0"))
    assert "rule beyond-1, rank 3/3" in line


def test_gc_policy_with_an_error_exits_2(app_layout: Layout, tmp_path: Path) -> None:
    f = _write(tmp_path / "bad.yml", BAD_YAML)
    result = CliRunner().invoke(cli, ["gc", str(app_layout.root), "--policy", str(f)])
    assert result.exit_code == 2
    assert f"{f}:11: policies[0].rules[0].when.rank: rank needs by" in result.stderr
    assert "(and 2 more problems)" in result.stderr
