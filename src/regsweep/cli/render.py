"""Plain-text renderings of library results for the terminal."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from regsweep.cli.common import human_bytes

if TYPE_CHECKING:
    from regsweep.reports.usage import UsageSummary
    from regsweep.scan.snapshot import Snapshot


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    for r in cells:
        lines.append(
            "  ".join(
                c.rjust(w) if c[:1].isdigit() else c.ljust(w)
                for c, w in zip(r, widths, strict=True)
            )
        )
    return "\n".join(lines)


def snapshot_summary(snap: Snapshot) -> str:
    from regsweep.scan.snapshot import column  # pyarrow: only once there is a snapshot

    c = snap.counts()
    blob_bytes = sum(column(snap["blobs"], "size"))
    lines = [
        f"store {snap.meta['store']} (layout root {snap.meta['layout_root']!r})",
        f"  repositories {c['repositories']}, tags {c['tags']}, revisions {c['revisions']}, "
        f"layer links {c['layer_links']}",
        f"  blobs {c['blobs']} ({human_bytes(blob_bytes)}), manifests read {c['manifests']}, "
        f"uploads {c['uploads']}",
    ]
    a = snap["anomalies"]
    if a.num_rows:
        by = Counter(zip(column(a, "severity"), column(a, "kind"), strict=True))
        lines.append(f"  anomalies {a.num_rows}:")
        for (sev, kind), n in sorted(by.items()):
            lines.append(f"    {sev:<7} {kind:<26} {n}")
    else:
        lines.append("  anomalies 0")
    return "\n".join(lines)


def usage_summary(u: UsageSummary, top: int = 10) -> str:
    rows = u.repositories.to_pylist()
    rows.sort(key=lambda r: (-r["exclusive_bytes"], r["repository"]))
    out = [
        f"stored: {human_bytes(u.stored_bytes)} in {u.stored_blobs} blobs; "
        f"live (referenced): {human_bytes(u.live_bytes)}; "
        f"unreferenced: {human_bytes(u.unreferenced_bytes)}",
        f"logical (sum over repositories): {human_bytes(u.logical_bytes)}; "
        f"deduplication ratio {u.dedup_ratio:.2f}",
        "",
        table(
            ["repository", "tags", "manifests", "total", "exclusive", "shared"],
            [
                [
                    r["repository"],
                    r["tags"],
                    r["manifests"],
                    human_bytes(r["total_bytes"]),
                    human_bytes(r["exclusive_bytes"]),
                    human_bytes(r["shared_bytes"]),
                ]
                for r in rows[:top]
            ],
        ),
    ]
    if len(rows) > top:
        out.append(f"... and {len(rows) - top} more repositories")
    return "\n".join(out)
