"""A tag planned for removal because its manifest is missing is kept if that manifest is pushed
again (by digest) between the plan and apply: the tag works again."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from regsweep.clock import utcnow
from regsweep.demo.generator import LayoutWriter, image, make_layer
from regsweep.gc.apply import apply_plan
from regsweep.gc.mark import mark
from regsweep.gc.plan import GcSettings, make_plan
from regsweep.layout.keys import tag_current_key
from regsweep.scan.scanner import scan
from regsweep.scan.snapshot import column
from regsweep.storage.base import ObjectStore


def test_dangling_tag_repaired_after_the_plan_is_kept(store: ObjectStore) -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    keep = image([make_layer("keep", 512)], created=created)
    lost = image([make_layer("lost", 512)], created=created)
    w = LayoutWriter(store)
    w.push("team/app", keep, tags=["stable"])
    # "v2" names a manifest this repository does not have: a dangling tag.
    store.write(tag_current_key("team/app", "v2"), lost.digest.encode())
    snap = scan(store)
    settings = GcSettings(grace=timedelta(0), upload_grace=timedelta(0), max_delete_fraction=1.0)
    plan = make_plan(snap, mark(snap), settings, utcnow() + timedelta(seconds=2))
    assert {(r["kind"], r["reason"], r["tag"]) for r in plan.rows.to_pylist()} >= {
        ("tag", "dangling-tag", "v2")
    }

    time.sleep(1.1)  # object stores keep whole seconds
    w.push("team/app", lost)  # pushed again, by digest, after the plan
    res = apply_plan(store, plan, mode="delete")

    assert res.skipped["referenced-since-scan"] >= 1
    assert store.read(tag_current_key("team/app", "v2"), max_bytes=100) == lost.digest.encode()
    after = scan(store)
    tags = dict(
        zip(
            column(after["tags"], "tag"),
            column(after["tags"], "digest"),
            strict=True,
        )
    )
    assert tags == {"stable": keep.digest, "v2": lost.digest}
    assert not mark(after).removed_tags
