"""Findings: what an audit reports, one row per problem, with a plain-language detail and what to
do about it. ``KINDS`` is the catalogue of every kind, its severity and what it means.

Severities:
- ``error``: something the registry presents as available is broken or lost (a pull fails, a
  digest lies, Distribution's garbage-collect aborts), or a safe gc cannot run;
- ``warning``: an inconsistency that wastes space, misleads a client or breaks on another
  platform, but loses nothing by itself;
- ``info``: worth knowing; nothing is wrong.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa

ERROR, WARNING, INFO = "error", "warning", "info"
SEVERITIES = (ERROR, WARNING, INFO)
_RANK = {s: i for i, s in enumerate(SEVERITIES)}


@dataclass(frozen=True, slots=True)
class Kind:
    severity: str  # the usual severity; a few kinds are raised or lowered by context
    summary: str


KINDS: dict[str, Kind] = {
    # corruption: what a live image needs is gone
    "missing-blob": Kind(ERROR, "a manifest's config, layer or blob data is missing"),
    "missing-layer-link": Kind(
        ERROR, "a manifest's blob exists but its repository has no _layers link to it"
    ),
    "dangling-revision": Kind(
        WARNING, "a revision link whose manifest data is missing (error if a tag or index uses it)"
    ),
    "dangling-tag": Kind(
        WARNING, "a tag whose manifest is not in its repository (error if the data was lost)"
    ),
    "dangling-layer-link": Kind(WARNING, "a _layers link whose blob data is missing"),
    "malformed-link": Kind(ERROR, "a link file that is empty, has a newline, is doubled, ..."),
    "unparsable-manifest": Kind(ERROR, "a manifest that cannot be read or understood"),
    "oversized-manifest": Kind(WARNING, "a manifest over the read cap; it was not checked"),
    "digest-mismatch": Kind(ERROR, "data that does not hash to the digest it is stored under"),
    "size-mismatch": Kind(ERROR, "a blob whose size differs from a descriptor that references it"),
    "unreadable-blob": Kind(ERROR, "blob data the store failed to return"),
    "index-child-missing": Kind(
        WARNING, "an index lists a manifest that is not in the index's repository"
    ),
    "orphan-referrer": Kind(WARNING, "a referrer whose subject is in no repository"),
    "orphan-signature-tag": Kind(
        WARNING, "a cosign or referrers-fallback tag whose subject is in no repository"
    ),
    "invalid-repository-name": Kind(ERROR, "a repository name Distribution rejects and ignores"),
    "case-collision": Kind(WARNING, "repository names or tags that are equal ignoring case"),
    "foreign-key": Kind(WARNING, "a key Distribution's layout has no place for"),
    "foreign-multipart-upload": Kind(WARNING, "an S3 multipart upload outside any upload"),
    "tmp-file": Kind(WARNING, "a temp file of an interrupted write"),
    "legacy-signature": Kind(INFO, "a schema1 signature link of registry <= 2.4"),
    "stale-upload": Kind(INFO, "an upload started longer ago than the upload age"),
    "stale-multipart-upload": Kind(
        WARNING, "a stale upload whose data is an incomplete S3 multipart upload"
    ),
    "untrustworthy-timestamps": Kind(
        WARNING, "a large share of objects share one timestamp (copied without times?)"
    ),
    "quarantine-referenced": Kind(
        ERROR, "a quarantined object that something in the registry needs again"
    ),
    "unreferenced-blobs": Kind(INFO, "blob data no manifest references (gc reclaims it)"),
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem. ``key`` is the object concerned; for something missing, the key that should
    exist. ``detail`` says what is wrong in plain language, ``action`` what to do about it."""

    severity: str
    kind: str
    repository: str | None
    key: str | None
    detail: str
    action: str
    digest: str | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        if self.severity not in _RANK:
            raise ValueError(f"unknown severity {self.severity!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


FINDINGS_SCHEMA = pa.schema(
    [
        ("severity", pa.dictionary(pa.int32(), pa.string())),
        ("kind", pa.dictionary(pa.int32(), pa.string())),
        ("repository", pa.string()),
        ("key", pa.string()),
        ("detail", pa.string()),
        ("action", pa.string()),
        ("digest", pa.string()),
        ("size", pa.int64()),
    ]
)


def sort_key(f: Finding) -> tuple[int, str, str, str]:
    return (_RANK[f.severity], f.kind, f.repository or "", f.key or "")


def sorted_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Errors first, then warnings, then info; within a severity by kind, repository, key."""
    return sorted(findings, key=sort_key)


def dedupe(findings: Iterable[Finding]) -> list[Finding]:
    """One finding per (kind, key, repository): the first seen wins."""
    seen: set[tuple[str, str | None, str | None]] = set()
    out: list[Finding] = []
    for f in findings:
        k = (f.kind, f.key, f.repository)
        if k not in seen:
            seen.add(k)
            out.append(f)
    return out


def findings_table(findings: Iterable[Finding]) -> pa.Table:
    """The findings as an Arrow table (``FINDINGS_SCHEMA``), in the order given."""
    items = list(findings)
    cols: dict[str, list[Any]] = {name: [] for name in FINDINGS_SCHEMA.names}
    for f in items:
        for name in FINDINGS_SCHEMA.names:
            cols[name].append(getattr(f, name))
    arrays = []
    for field in FINDINGS_SCHEMA:
        values = cols[field.name]
        if pa.types.is_dictionary(field.type):
            arrays.append(pa.array(values, type=pa.string()).dictionary_encode())
        else:
            arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=FINDINGS_SCHEMA)


def count_by_severity(findings: Iterable[Finding]) -> dict[str, int]:
    c = Counter(f.severity for f in findings)
    return {s: c.get(s, 0) for s in SEVERITIES}


def count_by_kind(findings: Iterable[Finding]) -> dict[tuple[str, str], int]:
    """(severity, kind) -> count, errors first."""
    c = Counter((f.severity, f.kind) for f in findings)
    return dict(sorted(c.items(), key=lambda kv: (_RANK[kv[0][0]], kv[0][1])))
