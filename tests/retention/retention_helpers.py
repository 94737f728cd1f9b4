"""Shared helpers of the retention tests: write exact layouts with back-dated times, scan them,
evaluate a policy, and read the verdicts back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from imagegen import LayoutWriter, Manifest, sample_image
from regsweep.gc.mark import MarkResult, mark
from regsweep.gc.plan import GcSettings, Plan, make_plan
from regsweep.retention import RetentionResult, evaluate_policy, parse_policy
from regsweep.retention.schema import PolicyFile
from regsweep.scan.scanner import scan
from regsweep.scan.snapshot import Snapshot
from regsweep.storage.filesystem import FilesystemStore

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
EXACT = {"min_age": "0s", "guards": {"max_delete_fraction": None, "keep_newest_per_repo": 0}}


def tiny(seed: str, **kw: Any) -> Manifest:
    return sample_image(seed, layers=1, size=64, **kw)


class Layout:
    """A filesystem store written like Distribution writes it, with each push back-dated."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.store = FilesystemStore(root)
        self.writer = LayoutWriter(self.store)

    def push(
        self,
        repo: str,
        manifest: Manifest,
        tags: Sequence[str] = (),
        *,
        age: timedelta = timedelta(days=30),
        now: datetime = NOW,
    ) -> str:
        """Push ``manifest`` (by digest when ``tags`` is empty) ``age`` before ``now``."""
        self.writer.at(now - age).push(repo, manifest, tags)
        return manifest.digest

    def scan(self) -> Snapshot:
        return scan(self.store)


def policy(tree: Mapping[str, Any] | str) -> PolicyFile:
    if isinstance(tree, str):
        tree = yaml.safe_load(tree)
    return parse_policy(dict(tree))


def one_policy(rules: list[dict[str, Any]], **options: Any) -> PolicyFile:
    """A policy for every repository with these rules, and no safety margins."""
    return policy(
        {
            "version": 1,
            "settings": EXACT,
            "policies": [{"name": "p", "repositories": ["glob:**"], **options, "rules": rules}],
        }
    )


def evaluate(
    pf: PolicyFile, layout: Layout, now: datetime = NOW, snap: Snapshot | None = None
) -> RetentionResult:
    return evaluate_policy(pf, snap or layout.scan(), layout.store, now)


def rows(result: RetentionResult) -> list[dict[str, Any]]:
    return list(result.decisions.to_pylist())


def deleted_tags(result: RetentionResult, repo: str | None = None) -> set[str]:
    return {
        r["tag"]
        for r in rows(result)
        if r["kind"] == "tag"
        and r["action"] == "delete"
        and (repo is None or r["repository"] == repo)
    }


def kept_tags(result: RetentionResult, repo: str | None = None) -> set[str]:
    return {
        r["tag"]
        for r in rows(result)
        if r["kind"] == "tag"
        and r["action"] == "keep"
        and (repo is None or r["repository"] == repo)
    }


def deleted_digests(result: RetentionResult) -> set[str]:
    return {r["digest"] for r in rows(result) if r["action"] == "delete"}


def names_of(digests: Iterable[str], images: Mapping[str, str]) -> set[str]:
    inverse = {d: name for name, d in images.items()}
    return {inverse[d] for d in digests}


def decision(result: RetentionResult, tag: str, repo: str | None = None) -> dict[str, Any]:
    found = [
        r for r in rows(result) if r["tag"] == tag and (repo is None or r["repository"] == repo)
    ]
    assert len(found) == 1, (tag, found)
    return found[0]


def gc_plan(
    snap: Snapshot, result: RetentionResult, now: datetime = NOW, run_id: str = "run"
) -> tuple[MarkResult, Plan]:
    """Mark and plan exactly as ``regsweep gc --policy`` does."""
    marked = mark(
        snap,
        delete_untagged=True,
        expired_tags=result.expired_pairs(),
        extra_roots=result.kept_untagged,
    )
    settings = GcSettings(delete_untagged=True, grace=timedelta(0), max_delete_fraction=1.0)
    plan = make_plan(
        snap, marked, settings, now, run_id=run_id, extra_removed_tags=result.expired_tags
    )
    return marked, plan
