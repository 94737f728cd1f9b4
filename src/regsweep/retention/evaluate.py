"""Evaluate a policy against a snapshot (retention-policy.md §6.3, normative).

Pure apart from reading image configs (and, for ``annotation_created``, manifests) through the
store, capped: same snapshot, policy and ``now`` give the same result, whatever the order of
the snapshot's rows. Ties in every ranking are broken by name, then digest.

Reading of the spec where it leaves room, each also stated in the README section:

- Conditions use three-valued logic: a condition whose attribute is unknown (no time, a tag
  that is not a version, a prerelease under ``prereleases: exclude``) *abstains*. ``all`` is
  false if any part is false, else unknown if any part is unknown; ``any`` is true if any part
  is true, else unknown if any is unknown. An abstaining rule never deletes: in ``keep-wins``
  an abstaining delete rule makes the verdict KEEP when no other rule fires, and in
  ``first-match`` an abstaining owner keeps.
- ``among: eligible`` is the selection filtered by the age conditions at the top level of
  ``when`` (those AND-ed with the rank).
- For ``unit: artifact`` the ``name``/``natural``/``semver`` rank key is the highest over the
  artifact's tags.
- ``max_delete_fraction`` counts tagged candidates only (untagged manifests are what a gc
  removes anyway); ``sibling_keep`` is applied again after ``keep_newest_per_repo``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from semver import Version

from regsweep.errors import UsageError
from regsweep.gc.mark import RepoView, repo_views
from regsweep.gc.plan import TagRemoval
from regsweep.retention.candidates import (
    Candidate,
    Manifests,
    RepoCandidates,
    candidates,
    read_problem,
)
from regsweep.retention.patterns import any_match
from regsweep.retention.schema import (
    AgeCond,
    Cond,
    Policy,
    PolicyFile,
    RankCond,
    Rule,
    TagClause,
)
from regsweep.retention.times import BlobReader, Stamp, TimeResolver
from regsweep.retention.versions import (
    SemverSettings,
    is_prerelease,
    natural_key,
    parse_version,
)
from regsweep.scan.graph import Graph
from regsweep.scan.snapshot import Snapshot, column
from regsweep.storage.base import ObjectStore

KEEP, DELETE = "keep", "delete"

DECISIONS_SCHEMA = pa.schema(
    [
        ("repository", pa.string()),
        ("kind", pa.string()),  # tag | untagged
        ("tag", pa.string()),  # null for untagged manifests
        ("digest", pa.string()),
        ("action", pa.string()),  # keep | delete
        ("decided_by", pa.string()),  # rule | protect | guard | default
        ("rule", pa.string()),  # rule name, protect:<what>, guard name, or null
        ("rank", pa.int64()),  # position in the deciding rule's rank window (1 = first)
        ("window", pa.int64()),  # size of that window
        ("push_time", pa.timestamp("ms", tz="UTC")),
        ("time_source", pa.string()),
        ("policy", pa.string()),
    ]
)


@dataclass(slots=True)
class Verdict:
    action: str
    decided_by: str  # rule | protect | guard | default
    rule: str | None = None
    rank: int | None = None
    window: int | None = None


@dataclass
class RetentionResult:
    """What a policy decided. ``expired_tags`` feed ``mark(expired_tags=...)`` and
    ``make_plan(extra_removed_tags=...)``; ``kept_untagged`` feed ``mark(extra_roots=...)``."""

    now: datetime
    expired_tags: dict[str, dict[str, TagRemoval]]
    kept_untagged: dict[str, set[str]]
    decisions: pa.Table
    skipped: dict[str, str]  # repository -> why every verdict there is KEEP
    config_reads: int = 0
    warnings: list[str] = field(default_factory=list)
    # The snapshot's reference graph the policy was decided on: the mark and the preview of
    # the same snapshot use it rather than each building its own (tens of MiB, and the
    # preview's build was a policy run's peak).
    graph: Graph | None = field(default=None, repr=False, compare=False)

    def expired_pairs(self) -> set[tuple[str, str]]:
        return {(r, t) for r, tags in self.expired_tags.items() for t in tags}

    def summary(self) -> dict[str, Any]:
        """Counts for ``--json``: candidates, kept and deleted tags and untagged manifests,
        per ``decided_by``, plus skipped repositories."""
        out: dict[str, Any] = {
            "now": self.now.isoformat(),
            "tags": {"keep": 0, "delete": 0},
            "untagged": {"keep": 0, "delete": 0},
            "decided_by": {},
            "skipped_repositories": dict(sorted(self.skipped.items())),
        }
        for kind, action, by in zip(
            column(self.decisions, "kind"),
            column(self.decisions, "action"),
            column(self.decisions, "decided_by"),
            strict=True,
        ):
            out["tags" if kind == "tag" else "untagged"][action] += 1
            k = f"{action}:{by}"
            out["decided_by"][k] = out["decided_by"].get(k, 0) + 1
        out["decided_by"] = dict(sorted(out["decided_by"].items()))
        return out


# -- three-valued logic ----------------------------------------------------------------------

Tri = bool | None


def _all(values: Iterable[Tri]) -> Tri:
    vals = list(values)
    if any(v is False for v in vals):
        return False
    return None if any(v is None for v in vals) else True


def _any(values: Iterable[Tri]) -> Tri:
    vals = list(values)
    if any(v is True for v in vals):
        return True
    return None if any(v is None for v in vals) else False


# -- per-repository evaluation ------------------------------------------------------------------


class _Attrs:
    """Lazy attributes of the candidates of one repository."""

    def __init__(self, times: TimeResolver, semver: SemverSettings) -> None:
        self.times = times
        self.semver = semver
        self._pushed: dict[Candidate, Stamp] = {}
        self._versions: dict[str, Version | None] = {}

    def pushed(self, c: Candidate) -> Stamp:
        if c not in self._pushed:
            self._pushed[c] = self.times.pushed(c.repo, c.digest, c.tags)
        return self._pushed[c]

    def time(self, c: Candidate, which: str) -> datetime | None:
        if which == "pushed":
            return self.pushed(c).value
        if which == "created":
            return self.times.created(c.repo, c.digest).value
        if which == "pulled":
            return self.times.pulled(self.pushed(c)).value
        return self.times.active(self.pushed(c)).value

    def version(self, c: Candidate) -> Version | None:
        """The highest SemVer among the candidate's tags, or None."""
        best = None
        for t in c.tags:
            if t not in self._versions:
                self._versions[t] = parse_version(t, self.semver)
            v = self._versions[t]
            if v is not None and (best is None or v > best):
                best = v
        return best

    def key(self, c: Candidate, by: str) -> Any:
        if by in ("pushed", "pulled", "active", "created"):
            return self.time(c, by)
        if by == "semver":
            return self.version(c)
        if not c.tags:
            return None
        if by == "natural":
            return max(natural_key(t) for t in c.tags)
        return max(c.tags)


def _tags_ok(clause: TagClause, c: Candidate) -> bool:
    if not c.tags:
        return clause.match_untagged
    tags = c.tags
    if clause.any is not None and not any(any_match(clause.any, t) for t in tags):
        return False
    if clause.all is not None and not all(any(p.matches(t) for t in tags) for p in clause.all):
        return False
    if clause.none is not None and any(any_match(clause.none, t) for t in tags):
        return False
    return not (
        clause.not_all is not None and not any(not any_match(clause.not_all, t) for t in tags)
    )


def selects(rule: Rule, c: Candidate) -> bool:
    s = rule.select
    if s.repositories is not None and not s.repositories.accepts(c.repo):
        return False
    if s.state == "tagged" and not c.tagged:
        return False
    if s.state == "untagged" and c.tagged:
        return False
    if s.tags is not None and not _tags_ok(s.tags, c):
        return False
    return not (s.media is not None and c.media not in s.media)


@dataclass
class _RankOut:
    positions: dict[Candidate, int]
    window: int


class _RepoEval:
    def __init__(
        self,
        policy: Policy,
        cands: list[Candidate],
        attrs: _Attrs,
        now: datetime,
    ) -> None:
        self.policy = policy
        self.cands = cands
        self.attrs = attrs
        self.now = now
        self.rules = policy.rules
        self.selected: dict[str, set[Candidate]] = {
            r.name: {c for c in cands if selects(r, c)} for r in self.rules
        }
        self.owner: dict[Candidate, Rule] = {}
        if policy.options.precedence == "first-match":
            for c in cands:
                for r in self.rules:
                    if c in self.selected[r.name]:
                        self.owner[c] = r
                        break
        self.ranks: dict[tuple[str, int], _RankOut] = {}
        for r in self.rules:
            for rc in r.ranks():
                self.ranks[(r.name, rc.id)] = self._rank(r, rc)

    # -- conditions ---------------------------------------------------------------------------

    def _age(self, cond: AgeCond, c: Candidate) -> Tri:
        t = self.attrs.time(c, cond.time)
        if t is None:
            return None
        age = self.now - t
        return age > cond.age if cond.kind == "older_than" else age < cond.age

    def _eval(self, rule: Rule, cond: Cond | AgeCond | RankCond, c: Candidate) -> Tri:
        if isinstance(cond, AgeCond):
            return self._age(cond, c)
        if isinstance(cond, RankCond):
            out = self.ranks[(rule.name, cond.id)]
            pos = out.positions.get(c)
            if pos is None:
                return None
            return pos <= cond.top if cond.top is not None else pos > (cond.beyond or 0)
        vals = [self._eval(rule, it, c) for it in cond.items]
        return _all(vals) if cond.op == "all" else _any(vals)

    def fires(self, rule: Rule, c: Candidate) -> Tri:
        if c not in self.selected[rule.name]:
            return False
        if rule.when is None:
            return True
        return self._eval(rule, rule.when, c)

    # -- ranks --------------------------------------------------------------------------------

    def _window(self, rule: Rule, rc: RankCond) -> list[Candidate]:
        sel = [c for c in self.cands if c in self.selected[rule.name]]
        if rc.among == "owned":
            return [c for c in sel if self.owner.get(c) is rule]
        if rc.among == "eligible" and rule.when is not None and rule.when.op == "all":
            ages = [it for it in rule.when.items if isinstance(it, AgeCond)]
            return [c for c in sel if all(self._age(a, c) is True for a in ages)]
        return sel

    def _rank(self, rule: Rule, rc: RankCond) -> _RankOut:
        uses_semver = rc.by == "semver" or rc.group_by != "none"
        groups: dict[Any, list[tuple[Any, Candidate]]] = defaultdict(list)
        for c in self._window(rule, rc):
            value = self.attrs.key(c, rc.by)
            if value is None:
                continue  # abstain: unknown times and non-versions are never ranked
            group: Any = None
            if uses_semver:
                v = self.attrs.version(c)
                if v is None or (rc.prereleases == "exclude" and is_prerelease(v)):
                    continue
                if rc.group_by == "semver-major":
                    group = v.major
                elif rc.group_by == "semver-minor":
                    group = (v.major, v.minor)
            groups[group].append((value, c))
        positions: dict[Candidate, int] = {}
        size = 0
        tiebreak = self.policy.options.order_tiebreak
        for members in groups.values():
            # Ties: ascending by the tiebreak keys; then a stable descending sort on the value.
            members.sort(key=lambda vc: tuple(_tb(vc[1], k) for k in tiebreak))
            members.sort(key=lambda vc: vc[0], reverse=True)
            for i, (_, c) in enumerate(members, start=1):
                positions[c] = i
            size = max(size, len(members))
        return _RankOut(positions, size)

    def rank_of(self, rule: Rule, c: Candidate) -> tuple[int | None, int | None]:
        for rc in rule.ranks():
            out = self.ranks[(rule.name, rc.id)]
            if c in out.positions:
                return out.positions[c], out.window
        return None, None

    # -- verdicts -----------------------------------------------------------------------------

    def verdict(self, c: Candidate) -> Verdict:
        opts = self.policy.options
        if opts.precedence == "first-match":
            owner = self.owner.get(c)
            if owner is None:
                return Verdict(opts.unmatched, "default")
            f = self.fires(owner, c)
            rank, window = self.rank_of(owner, c)
            if f is None:
                return Verdict(KEEP, "rule", owner.name, rank, window)
            action = owner.action if f else (KEEP if owner.action == DELETE else DELETE)
            return Verdict(action, "rule", owner.name, rank, window)
        abstained = False
        first_delete: Rule | None = None
        for r in self.rules:
            f = self.fires(r, c)
            if f is True and r.action == KEEP:
                return Verdict(KEEP, "rule", r.name, *self.rank_of(r, c))
            if f is True and first_delete is None:
                first_delete = r
            if f is None and r.action == DELETE:
                abstained = True
        if first_delete is not None:
            return Verdict(DELETE, "rule", first_delete.name, *self.rank_of(first_delete, c))
        if abstained:
            return Verdict(KEEP, "default", "unknown-attribute")
        return Verdict(opts.unmatched, "default")


def _tb(c: Candidate, key: str) -> str:
    return c.name if key == "name" else c.digest


# -- protection sources ------------------------------------------------------------------------

_DIGEST = re.compile(r"(sha256|sha384|sha512):[a-f0-9]{32,128}")


@dataclass
class InUse:
    digests: set[str] = field(default_factory=set)
    refs: set[tuple[str, str]] = field(default_factory=set)  # (repository path, tag)

    def protects(self, c: Candidate) -> bool:
        if c.digest in self.digests:
            return True
        for path, tag in self.refs:
            if tag in c.tags and (path == c.repo or path.endswith("/" + c.repo)):
                return True
        return False


def read_in_use(paths: Iterable[str]) -> InUse:
    """Parse in-use files: one image reference per line (``[host/]repo:tag``,
    ``[host/]repo@digest`` or a bare digest); ``#`` starts a comment. A file that cannot be read
    is an error: deciding without it could delete an image in use."""
    out = InUse()
    for p in paths:
        try:
            text = Path(p).read_text()
        except OSError as e:
            raise UsageError(f"protect.in_use_files: cannot read {p}: {e.strerror}") from e
        for raw in text.splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            for m in _DIGEST.finditer(line):
                out.digests.add(m.group(0))
            ref = line.split("@", 1)[0]
            last = ref.rsplit("/", 1)[-1]
            if ":" in last and not _DIGEST.fullmatch(ref):
                path, _, tag = ref.rpartition(":")
                out.refs.add((path, tag))
    return out


# -- the entry point ---------------------------------------------------------------------------


def evaluate_policy(
    policy: PolicyFile,
    snap: Snapshot,
    store: ObjectStore | None,
    now: datetime,
    *,
    artifact_types: dict[str, str | None] | None = None,
    graph: Graph | None = None,
) -> RetentionResult:
    """Decide every candidate of every repository (§6.3). ``now`` is used unless the policy's
    ``settings.now`` fixes it. ``store`` is read only for image configs (and manifests for
    ``annotation_created``); without one, those times are unknown. ``graph`` is the
    snapshot's when the caller has it (else built here)."""
    now = policy.settings.now or now
    graph = graph if graph is not None else Graph.from_snapshot(snap)
    if artifact_types is None:
        # Only the manifests that have one (a lookup of any other gives None).
        m = snap["manifests"]
        m = m.filter(pc.is_valid(m["artifact_type"]))
        artifact_types = dict(zip(column(m, "digest"), column(m, "artifact_type"), strict=True))
    reader = BlobReader(snap, store)
    times = TimeResolver(snap, reader, policy.settings)
    in_use = read_in_use(policy.protect.in_use_files)
    # The decisions column by column: a dict per row was ~700 bytes a candidate.
    columns: dict[str, list[Any]] = {name: [] for name in DECISIONS_SCHEMA.names}
    expired: dict[str, dict[str, TagRemoval]] = {}
    kept_untagged: dict[str, set[str]] = {}
    skipped: dict[str, str] = {}

    views = repo_views(snap)
    manifests = Manifests(graph, views.values())
    for name, repo in views.items():
        pol = policy.policy_for(name)
        opts = pol.options if pol is not None else policy.defaults
        rc = candidates(
            repo,
            manifests,
            artifact_types,
            unit=opts.unit,
            legacy_cosign_tags=opts.legacy_cosign_tags,
        )
        attrs = _Attrs(times, opts.semver)
        verdicts = _decide_repo(policy, pol, repo, rc, attrs, manifests, now, in_use, skipped)
        for c in rc.tags + rc.untagged:
            v = verdicts[c]
            stamp = attrs.pushed(c)
            for tag in c.tags or (None,):
                for field_name, value in (
                    ("repository", name),
                    ("kind", "tag" if tag is not None else "untagged"),
                    ("tag", tag),
                    ("digest", c.digest),
                    ("action", v.action),
                    ("decided_by", v.decided_by),
                    ("rule", v.rule),
                    ("rank", v.rank),
                    ("window", v.window),
                    ("push_time", stamp.value),
                    ("time_source", stamp.source),
                    ("policy", pol.name if pol is not None else None),
                ):
                    columns[field_name].append(value)
                if tag is not None and v.action == DELETE:
                    expired.setdefault(name, {})[tag] = TagRemoval(
                        "retention", v.rule, v.decided_by, v.rank
                    )
            if not c.tags and v.action == KEEP:
                kept_untagged.setdefault(name, set()).add(c.digest)
        if pol is not None and pol.options.referrers == "keep-orphans" and name not in skipped:
            extra = rc.referrers | rc.cosign_targets
            if extra:
                kept_untagged.setdefault(name, set()).update(extra)

    table = pa.table(columns, schema=DECISIONS_SCHEMA)
    del columns
    # In (repository, kind, tag, digest) order; an untagged manifest's null tag as "".
    order = pc.sort_indices(
        table.set_column(2, "tag", pc.fill_null(table["tag"], "")),
        [(k, "ascending") for k in ("repository", "kind", "tag", "digest")],
    )
    table = table.take(order)
    return RetentionResult(
        now=now,
        expired_tags=expired,
        kept_untagged=kept_untagged,
        decisions=table,
        skipped=skipped,
        config_reads=reader.reads,
        warnings=[f"could not read blob {e}" for e in reader.errors[:20]],
        graph=graph,
    )


def _decide_repo(
    policy: PolicyFile,
    pol: Policy | None,
    repo: RepoView,
    rc: RepoCandidates,
    attrs: _Attrs,
    manifests: Manifests,
    now: datetime,
    in_use: InUse,
    skipped: dict[str, str],
) -> dict[Candidate, Verdict]:
    all_cands = rc.tags + rc.untagged
    if pol is None:
        return {c: Verdict(KEEP, "default", "no-policy") for c in all_cands}
    if not any(
        r.select.repositories is None or r.select.repositories.accepts(repo.name) for r in pol.rules
    ):
        return {c: Verdict(KEEP, "default", "no-rule-targets-repository") for c in all_cands}
    guards = policy.settings.guards
    problem = read_problem(repo, manifests)
    if problem is not None and guards.on_read_error == "skip_repo":
        skipped[repo.name] = f"read error: {problem}"
        return {c: Verdict(KEEP, "guard", "on_read_error") for c in all_cands}

    ev = _RepoEval(pol, all_cands, attrs, now)
    verdicts = {c: ev.verdict(c) for c in all_cands}

    def to_keep(c: Candidate, by: str, rule: str) -> None:
        old = verdicts[c]
        if old.action == DELETE:
            verdicts[c] = Verdict(KEEP, by, rule, old.rank, old.window)

    # 1. protect
    prot = policy.protect
    for c in all_cands:
        if verdicts[c].action != DELETE:
            continue
        if prot.tags and any(any_match(prot.tags, t) for t in c.tags):
            to_keep(c, "protect", "protect:tags")
        elif prot.immutable_tags and any(any_match(prot.immutable_tags, t) for t in c.tags):
            to_keep(c, "protect", "protect:immutable_tags")
        elif c.digest in prot.digests:
            to_keep(c, "protect", "protect:digests")
        elif in_use.protects(c):
            to_keep(c, "protect", "protect:in_use_files")
    # 2. min_age
    min_age: timedelta = policy.settings.min_age
    for c in all_cands:
        if verdicts[c].action == DELETE:
            t = attrs.pushed(c).value
            if t is None or now - t < min_age:
                to_keep(c, "guard", "min_age")

    # 3. sibling_keep
    def sibling_keep() -> None:
        if not pol.options.sibling_keep or pol.options.unit != "tag":
            return
        kept_digests = {c.digest for c in rc.tags if verdicts[c].action == KEEP}
        for c in rc.tags:
            if c.digest in kept_digests:
                to_keep(c, "guard", "sibling_keep")

    sibling_keep()
    # 4. keep_newest_per_repo
    n = guards.keep_newest_per_repo
    if n > 0:
        known = [(attrs.pushed(c).value, c) for c in rc.tags if attrs.pushed(c).value is not None]
        known.sort(key=lambda vc: (vc[1].name, vc[1].digest))
        known.sort(key=lambda vc: vc[0], reverse=True)  # type: ignore[arg-type,return-value]
        for _, c in known[:n]:
            to_keep(c, "guard", "keep_newest_per_repo")
        sibling_keep()
    # 5. max_delete_fraction
    frac = guards.max_delete_fraction
    if frac is not None and rc.tags:
        gone = sum(1 for c in rc.tags if verdicts[c].action == DELETE)
        if gone and gone / len(rc.tags) > frac:
            skipped[repo.name] = (
                f"guard max_delete_fraction: {gone} of {len(rc.tags)} tagged candidates "
                f"({gone / len(rc.tags):.0%}) would go, over {frac}; nothing in it is removed"
            )
            for c in all_cands:
                to_keep(c, "guard", "max_delete_fraction")
    return verdicts
