"""The plan ``regsweep gc [--policy FILE]`` makes, shared by the gc, report and run commands.

With a retention policy, the tags it expires are not roots and are removed in the plan, the
untagged manifests it keeps are roots, and the rest is marked in delete-untagged mode (so index
children and referrers follow their parents). Without one, roots are as ``settings`` say.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from regsweep.gc.mark import mark
from regsweep.gc.plan import GcSettings, Plan, make_plan
from regsweep.scan.snapshot import Snapshot
from regsweep.storage.base import ObjectStore

if TYPE_CHECKING:
    from regsweep.retention import PolicyFile, RetentionResult


def plan_gc(
    snap: Snapshot,
    store: ObjectStore,
    policy: PolicyFile | None,
    settings: GcSettings,
    now: datetime,
    run_id: str,
) -> tuple[Plan, RetentionResult | None]:
    """The gc plan, and the policy's decisions when there is one. ``store`` is only read (image
    configs, for push times the links do not give)."""
    if policy is None:
        marked = mark(snap, delete_untagged=settings.delete_untagged)
        return make_plan(snap, marked, settings, now, run_id=run_id), None
    from regsweep.retention import evaluate_policy  # only with a policy (yaml, the rules)

    result = evaluate_policy(policy, snap, store, now)
    marked = mark(
        snap,
        delete_untagged=True,
        expired_tags=result.expired_pairs(),
        extra_roots=result.kept_untagged,
        graph=result.graph,
    )
    plan = make_plan(
        snap, marked, settings, now, run_id=run_id, extra_removed_tags=result.expired_tags
    )
    return plan, result
