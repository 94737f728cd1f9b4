"""Past runs from the deletion log (``regsweep audit history``): what each gc apply, restore or
purge did, when, why and by which rule. Read-only: the log is append-only and this only reads it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from regsweep.audit.log import read_log
from regsweep.scan.snapshot import rows
from regsweep.storage.base import ObjectStore

# Actions that took an object out of the registry (bytes count as removed only for these).
REMOVING = ("deleted", "quarantined", "aborted", "purged")


@dataclass
class RunHistory:
    run_id: str
    first: datetime | None
    last: datetime | None
    modes: list[str]
    actions: dict[str, int]  # action -> objects
    removed_kinds: dict[str, int]  # kind -> objects removed
    bytes_removed: int
    reasons: list[tuple[str, int]] = field(default_factory=list)  # most common first
    rules: list[tuple[str, int]] = field(default_factory=list)
    repositories: int = 0  # distinct repositories touched by removals

    @property
    def failures(self) -> int:
        return self.actions.get("failed", 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "first": self.first.isoformat() if self.first else None,
            "last": self.last.isoformat() if self.last else None,
            "modes": self.modes,
            "actions": self.actions,
            "removed_kinds": self.removed_kinds,
            "bytes_removed": self.bytes_removed,
            "reasons": dict(self.reasons),
            "rules": dict(self.rules),
            "repositories": self.repositories,
            "failures": self.failures,
        }


def run_history(log: pa.Table, top: int = 5) -> list[RunHistory]:
    """One summary per run id in ``log`` (``read_log``'s table), oldest first."""
    by_run: dict[str, list[dict[str, Any]]] = {}
    for r in rows(log):
        by_run.setdefault(r["run_id"], []).append(r)
    out: list[RunHistory] = []
    for run_id, rs in by_run.items():
        times = [r["time"] for r in rs if r["time"] is not None]
        removed = [r for r in rs if r["action"] in REMOVING]
        reasons = Counter(r["reason"] for r in removed if r["reason"])
        rules = Counter(r["rule"] for r in removed if r["rule"])
        out.append(
            RunHistory(
                run_id=run_id,
                first=min(times) if times else None,
                last=max(times) if times else None,
                modes=sorted({r["mode"] for r in rs if r["mode"]}),
                actions=dict(sorted(Counter(r["action"] for r in rs).items())),
                removed_kinds=dict(sorted(Counter(r["kind"] or "?" for r in removed).items())),
                bytes_removed=sum(int(r["size"] or 0) for r in removed),
                reasons=reasons.most_common(top),
                rules=rules.most_common(top),
                repositories=len({r["repository"] for r in removed if r["repository"]}),
            )
        )
    return sorted(out, key=lambda h: (h.first or datetime.min.replace(tzinfo=UTC), h.run_id))


def read_history(store: ObjectStore, top: int = 5) -> list[RunHistory]:
    """Every run logged in ``store`` (see ``run_history``)."""
    return run_history(read_log(store), top)
