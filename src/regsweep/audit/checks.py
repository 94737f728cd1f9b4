"""Consistency checks: a Snapshot and its mark in, Findings out. Pure: nothing here touches a
store (the caller lists the quarantine and passes it in), and ``now`` is explicit.

What each check relies on is in storage-layout.md: what must exist at push time (§3.3), what
Distribution leaves behind (§4.6, §4.7), the edge cases of §7, and the timestamps of §5.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from regsweep.audit.findings import ERROR, INFO, WARNING, Finding
from regsweep.gc.apply import QUARANTINE_PREFIX
from regsweep.gc.mark import MarkResult, referrer_tag_subject
from regsweep.layout.keys import Kind as KeyKind
from regsweep.layout.keys import (
    blob_data_key,
    classify,
    layer_link_key,
    repo_key,
    revision_link_key,
)
from regsweep.layout.manifest import REF_MANIFEST
from regsweep.scan.graph import Graph, has_place, pylist
from regsweep.scan.snapshot import (
    DERIVED_KEYS,
    Snapshot,
    by_value,
    from_epoch_ms,
    one_array,
    rows,
)
from regsweep.storage.base import ObjectInfo

DEFAULT_UPLOAD_AGE = timedelta(hours=168)  # Distribution's own purge age


@dataclass(frozen=True)
class CheckSettings:
    """Thresholds of the checks, with units in their types."""

    now: datetime
    upload_age: timedelta = DEFAULT_UPLOAD_AGE
    # "untrustworthy timestamps": at least this share of at least this many objects carry one
    # identical time. Small registries are left out: a fresh one is often pushed in a second.
    timestamp_share: float = 0.5
    timestamp_min_objects: int = 200


_LINK_PROBLEMS = {
    "empty": "is empty (0 bytes)",
    "whitespace": "has whitespace around its digest (e.g. a trailing newline)",
    "doubled": "holds its digest twice (sha256:<hex>sha256:<hex>, the Azure append race)",
    "uppercase": "has upper-case hex",
    "unsupported-algorithm": "names a digest algorithm Distribution does not support",
    "invalid": "does not hold a digest",
}
_VANISHED = "vanished during the scan"  # a link or manifest deleted while the scan ran
_LINK_WHAT = {
    "tags": "tag link (current/link)",
    "tag_history": "tag history link",
    "revisions": "revision link",
    "layer_links": "_layers link",
}
_SIGNATURE_WHAT = {
    "sig": "cosign signature tag",
    "att": "cosign attestation tag",
    "sbom": "cosign SBOM tag",
    None: "referrers-fallback tag",
}


def _short(digest: str | None) -> str:
    if digest is None:
        return "?"
    alg, _, hex_ = digest.partition(":")
    return f"{alg}:{hex_[:12]}" if hex_ else digest


def _and_more(items: list[str], shown: int = 3) -> str:
    head = ", ".join(items[:shown])
    return head + (f" and {len(items) - shown} more" if len(items) > shown else "")


class _Ref(NamedTuple):
    child: str
    kind: str
    has_urls: bool
    platform: str | None


@dataclass(slots=True)
class _Row:
    """A row of revisions or tags: the columns the checks read, looked up as ``row["name"]``
    like the dicts it stands for, its key built when asked for where the snapshot holds none
    (``DERIVED_KEYS``). Whole rows as dicts, every key built, were ~770 MiB of an audit of a
    1M-object store (300k links, 94k revisions)."""

    repository: str
    tag: Any  # str (tags) or None
    digest: Any  # str, or None for a tag that cannot be read
    target: str | None
    blob_present: bool | None
    problem: str | None
    raw_key: str | None  # as the snapshot holds it
    build_key: Callable[[_Row], str]

    def __getitem__(self, name: str) -> Any:
        return self.key if name == "key" else getattr(self, name)

    @property
    def key(self) -> str:
        return self.raw_key if self.raw_key is not None else self.build_key(self)


@dataclass(slots=True)
class _Manifest:
    """A row of manifests: the columns the checks read, and where its references are among
    the index's (``_Refs``, rows ``lo`` to ``hi``)."""

    kind: str | None
    problem: str | None
    subject: str | None
    artifact_type: str | None
    size: int | None
    lo: int
    hi: int


@dataclass
class _Refs:
    """The references the checks follow, grouped by parent, a Python list per column (their
    digests the index's shared strings): a tuple per reference was ~50 MiB of an audit of
    445k references. Sizes are checked column-wise (``check_sizes``) and not held here."""

    child: list[str]
    kind: list[str]
    has_urls: list[bool]
    platform: list[str | None]

    def of(self, m: _Manifest | None) -> Iterator[_Ref]:
        if m is None:
            return
        for i in range(m.lo, m.hi):
            yield _Ref(self.child[i], self.kind[i], self.has_urls[i], self.platform[i])


_ROW_COLUMNS = ("repository", "tag", "digest", "target", "blob_present", "problem", "key")


def _rows(
    snap: Snapshot, table: str, root: str, shared: dict[tuple[int, ...], list[Any]]
) -> Iterator[_Row]:
    t = snap[table]
    shape = DERIVED_KEYS[table]

    def build_key(r: _Row) -> str:
        return shape.key(root, *(getattr(r, name) for name in shape.columns))

    columns = [
        pylist(t[name], shared) if name in t.column_names else [None] * t.num_rows
        for name in _ROW_COLUMNS
    ]
    for repository, tag, digest, target, present, problem, key in zip(*columns, strict=True):
        yield _Row(repository, tag, digest, target, present, problem, key, build_key)


class _Sorted:
    """Strings (digests) as a sorted list, asked only ``in``: a set of the ~350k digests of a
    1M-object store, or of each repository's ``_layers`` links, was ~45 bytes an entry more
    than a list (~35 MiB of the audit's index; the strings are shared either way)."""

    __slots__ = ("values",)

    def __init__(self, values: Iterable[str], *, ordered: bool = False) -> None:
        # ``ordered``: already sorted and distinct (a column over the snapshot's sorted
        # dictionary, such as the stored digests by place).
        self.values = list(values) if ordered else sorted({v for v in values if v is not None})

    def __contains__(self, x: object) -> bool:
        if not isinstance(x, str):
            return False
        v = self.values
        i = bisect_left(v, x)
        return i < len(v) and v[i] == x


_NONE = _Sorted((), ordered=True)


@dataclass
class _Index:
    """The snapshot's tables, reorganised for lookups. Digests are strings shared through the
    snapshot's one dictionary (one object a digest, whichever table names it); what comes a
    row per blob or per ``_layers`` link (sizes, link rows) is not held here: the checks that
    need it read the snapshot's columns and the graph's places."""

    root: str
    graph: Graph  # the mark's
    stored: _Sorted  # the stored blobs something in the snapshot names
    revisions: dict[str, dict[str, _Row]]  # repo -> path digest -> row
    rev_digests: dict[str, _Sorted]  # repo -> path digests and targets
    tags: dict[str, dict[str, _Row]]  # repo -> tag -> row
    links: dict[str, _Sorted]  # repo -> path digests of its _layers links
    manifests: dict[str, _Manifest]
    refs: _Refs
    present: set[str]  # manifests with a revision link and data, in any repository
    repos_of: dict[str, list[str]] = field(default_factory=dict)  # manifest -> repositories

    @classmethod
    def build(cls, snap: Snapshot, graph: Graph) -> _Index:
        root = str(snap.meta.get("layout_root", "docker/registry/v2/"))
        # One string per digest for every digest column read here (they share one dictionary,
        # the graph's ``named``).
        shared: dict[tuple[int, ...], list[Any]] = {}
        stored_at = pa.array(np.flatnonzero(graph.sizes >= 0), pa.int32())
        # In the order of their places, which is theirs (the graph's dictionary is sorted).
        stored = _Sorted(
            pylist(pa.DictionaryArray.from_arrays(stored_at, graph.named), shared), ordered=True
        )
        revisions: dict[str, dict[str, _Row]] = defaultdict(dict)
        rev_digests: dict[str, set[str]] = defaultdict(set)
        present: set[str] = set()
        repos_of: dict[str, set[str]] = defaultdict(set)
        for r in _rows(snap, "revisions", root, shared):
            revisions[r.repository][r.digest] = r
            for d in (r.digest, r.target):
                if d is not None:
                    rev_digests[r.repository].add(d)
                    repos_of[d].add(r.repository)
            if r.blob_present and r.target is not None:
                present.add(r.target)
        tags: dict[str, dict[str, _Row]] = defaultdict(dict)
        for r in _rows(snap, "tags", root, shared):
            tags[r.repository][r.tag] = r
        by_repo: dict[str, list[str]] = defaultdict(list)
        ll = snap["layer_links"]
        for repo, digest in zip(
            pylist(ll["repository"]), pylist(ll["digest"], shared), strict=True
        ):
            by_repo[repo].append(digest)
        links = {repo: _Sorted(digests) for repo, digests in by_repo.items()}
        del by_repo
        # References by parent (the snapshot holds them so; sorted again here, stably, so as
        # not to depend on it): a manifest's are the rows from its first to its last. Every
        # parent is a row of manifests: the scan knows a manifest's references by reading it.
        rt = snap["references"]
        parent_at = graph.column_places(rt["parent"])
        order = np.argsort(parent_at, kind="stable")
        parent_at = parent_at[order]
        rt = rt.select(["child", "kind", "has_urls", "platform"]).take(pa.array(order))
        refs = _Refs(*(pylist(rt[c], shared) for c in rt.column_names))
        del rt, order
        m = snap["manifests"]
        m_at = graph.column_places(m["digest"])
        lo = np.where(m_at >= 0, np.searchsorted(parent_at, m_at, "left"), 0)
        hi = np.where(m_at >= 0, np.searchsorted(parent_at, m_at, "right"), 0)
        manifests = {
            digest: _Manifest(*values)
            for digest, *values in zip(
                pylist(m["digest"], shared),
                *(
                    pylist(m[c], shared)
                    for c in ("kind", "problem", "subject", "artifact_type", "size")
                ),
                lo.tolist(),
                hi.tolist(),
                strict=True,
            )
        }
        return cls(
            root=root,
            graph=graph,
            stored=stored,
            revisions=dict(revisions),
            rev_digests={repo: _Sorted(ds) for repo, ds in rev_digests.items()},
            tags=dict(tags),
            links=links,
            manifests=manifests,
            refs=refs,
            present=present,
            repos_of={d: sorted(rs) for d, rs in repos_of.items()},
        )

    def blob_key(self, digest: str) -> str:
        return blob_data_key(digest, self.root)

    def is_present(self, subject: str) -> bool:
        """A manifest with a revision link and data in some repository. A sha512 subject named
        by a tag is truncated to 64 hex characters, so match it as a prefix."""
        if subject in self.present:
            return True
        return subject.startswith("sha512:") and any(d.startswith(subject) for d in self.present)


# -- the checks ------------------------------------------------------------------------------


def check_links(ix: _Index, snap: Snapshot) -> list[Finding]:
    """Malformed link files (storage-layout.md §1.4, §7.8): Distribution cannot read them."""
    out: list[Finding] = []
    for table, what in _LINK_WHAT.items():
        t = snap[table]
        # Picked out in Arrow: a store listed from a stale inventory can have many links that
        # vanished since, a Python row each if converted (they are not malformed).
        bad = by_value(t["problem"], lambda v: pc.not_equal(v, _VANISHED))
        for r in rows(snap.with_keys(table, t.filter(pc.fill_null(bad, False)))):
            problem = r["problem"]
            described = _LINK_PROBLEMS.get(problem, problem)
            digest = r.get("target") if table != "tags" else r["digest"]
            path_digest = r["digest"] if table != "tags" else None
            if table == "tags" and digest is None:
                action = (
                    "push the tag again (or write the digest it should name into the file); "
                    "until then regsweep gc keeps every manifest in the tag's history"
                )
            else:
                want = path_digest or digest
                action = (
                    f"rewrite it to hold exactly {want} ({len(want)} bytes, no newline); "
                    "regsweep reads it leniently meanwhile"
                    if want
                    else "rewrite it with the digest it should hold"
                )
            out.append(
                Finding(
                    ERROR,
                    "malformed-link",
                    r["repository"],
                    r["key"],
                    f"{what} {described}; Distribution cannot read it, so what it names cannot "
                    "be pulled through it and Distribution's garbage-collect aborts on it",
                    action,
                    digest=path_digest or digest,
                    size=r["size"],
                )
            )
    return out


def check_manifests(ix: _Index) -> list[Finding]:
    """Manifests that cannot be read, understood or trusted (§3.1, §7.12)."""
    out: list[Finding] = []
    for digest, m in sorted(ix.manifests.items()):
        problem = m.problem
        if problem is None or problem == _VANISHED:
            continue
        repos = ix.repos_of.get(digest, [])
        repo = repos[0] if repos else None
        where = f" (in {_and_more(repos)})" if repos else ""
        key = ix.blob_key(digest)
        if problem.startswith("too-large"):
            out.append(
                Finding(
                    WARNING,
                    "oversized-manifest",
                    repo,
                    key,
                    f"manifest {digest}{where} is {m.size} bytes, over the read cap "
                    f"({problem}): regsweep could not check what it references, so gc keeps "
                    "its repositories whole",
                    "raise --max-manifest-bytes if it is a real manifest (Distribution itself "
                    "accepts at most 4 MiB)",
                    digest=digest,
                    size=m.size,
                )
            )
        elif problem.startswith("digest-mismatch"):
            out.append(
                Finding(
                    ERROR,
                    "digest-mismatch",
                    repo,
                    key,
                    f"manifest {digest}{where} does not hash to its digest: its data is corrupt",
                    "restore the blob from a backup, or push the image again",
                    digest=digest,
                    size=m.size,
                )
            )
        else:
            out.append(
                Finding(
                    ERROR,
                    "unparsable-manifest",
                    repo,
                    key,
                    f"manifest {digest}{where} cannot be understood ({problem}): Distribution "
                    "cannot serve it and its garbage-collect aborts on it; regsweep gc keeps "
                    "everything its repositories link (fail closed)",
                    "push the image again, or delete the manifest through the registry API "
                    "(DELETE /v2/<repository>/manifests/<digest>) if nothing needs it",
                    digest=digest,
                    size=m.size,
                )
            )
    return out


def _index_users(ix: _Index, repo: str) -> dict[str, list[str]]:
    """Manifest digest -> indexes of ``repo`` that list it."""
    users: dict[str, list[str]] = defaultdict(list)
    for d in ix.revisions.get(repo, {}):
        for ref in ix.refs.of(ix.manifests.get(d)):
            if ref.kind == REF_MANIFEST:
                users[ref.child].append(d)
    return users


def check_dangling(ix: _Index, snap: Snapshot, marked: MarkResult) -> list[Finding]:
    """Revision links, tags and ``_layers`` links whose target is gone (§4.6, §7.7)."""
    out: list[Finding] = []
    for repo, revs in sorted(ix.revisions.items()):
        tagged: dict[str, list[str]] = defaultdict(list)
        for tag, t in ix.tags.get(repo, {}).items():
            if t["digest"] is not None:
                tagged[t["digest"]].append(tag)
        users = _index_users(ix, repo)
        for _, r in sorted(revs.items()):
            target = r["target"]
            if target is None or r["blob_present"] or r["problem"] is not None:
                continue  # a malformed link is reported as such
            tags = sorted(tagged.get(target, []))
            indexes = users.get(target, [])
            used = []
            if tags:
                used.append(f"tag(s) {_and_more(tags)} point to it")
            if indexes:
                used.append(f"index(es) {_and_more([_short(i) for i in indexes])} list it")
            detail = (
                f"revision link of manifest {target} in {repo}, but the manifest's data "
                f"({ix.blob_key(target)}) is missing: pulling {repo}@{_short(target)} fails "
                "(MANIFEST_UNKNOWN)"
            )
            if used:
                detail += "; " + " and ".join(used)
                action = "push the image (the same digest) again to restore the data"
            else:
                action = "`regsweep gc` removes the dangling link"
            out.append(
                Finding(
                    ERROR if used else WARNING,
                    "dangling-revision",
                    repo,
                    r["key"],
                    detail,
                    action,
                    digest=target,
                )
            )
    for repo, repo_tags in sorted(ix.tags.items()):
        known = ix.rev_digests.get(repo, _NONE)
        for tag, t in sorted(repo_tags.items()):
            d = t["digest"]
            if d is None or t["problem"] is not None or (d in known and d in ix.stored):
                continue
            if d in known:
                out.append(
                    Finding(
                        ERROR,
                        "dangling-tag",
                        repo,
                        t["key"],
                        f"tag {tag} of {repo} points to manifest {d}, whose data is missing: "
                        "the image is lost (pulls fail with MANIFEST_UNKNOWN)",
                        "push the image to the tag again, or delete the tag",
                        digest=d,
                    )
                )
            else:
                out.append(
                    Finding(
                        WARNING,
                        "dangling-tag",
                        repo,
                        t["key"],
                        f"tag {tag} of {repo} points to manifest {d}, which has no revision "
                        f"link in {repo}: the registry lists the tag but pulling it fails "
                        "(MANIFEST_UNKNOWN); a manifest delete leaves this behind on "
                        "Distribution 2.x with S3 (distribution#3142)",
                        "`regsweep gc` removes it; or push the image to the tag again",
                        digest=d,
                    )
                )
    out += _dangling_layer_links(snap, marked)
    return out


def _dangling_layer_links(snap: Snapshot, marked: MarkResult) -> list[Finding]:
    """``_layers`` links whose target is gone and that no kept manifest needs: picked out in
    Arrow (a store has millions of links, a handful of them dangling), the needed ones by
    place in the mark's closures."""
    ll = snap["layer_links"]
    absent = pc.invert(pc.fill_null(ll["blob_present"], False))
    gone = ll.filter(pc.and_(pc.and_(pc.is_valid(ll["target"]), absent), pc.is_null(ll["problem"])))
    # A kept manifest needs it (by the link's path or content): reported as missing-blob.
    needed = marked.links_reached(gone)
    out: list[Finding] = []
    for r in rows(snap.with_keys("layer_links", gone.filter(pa.array(~needed)))):
        repo, target = r["repository"], r["target"]
        out.append(
            Finding(
                WARNING,
                "dangling-layer-link",
                repo,
                r["key"],
                f"_layers link in {repo} to blob {target}, whose data is missing: the "
                "registry answers BLOB_UNKNOWN for it",
                "`regsweep gc` removes it; if an image needs the blob, push it again",
                digest=target,
            )
        )
    return out


def check_missing_blobs(
    ix: _Index, marked: MarkResult, quarantined: dict[str, list[str]]
) -> list[Finding]:
    """Live manifests whose config, layers or blobs are not stored (invariant 5: corruption)."""
    by: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for m in marked.missing:
        by[(m.repository, m.blob)].append(m)
    out: list[Finding] = []
    for (repo, blob), ms in sorted(by.items()):
        first = ms[0]
        more = f" (and {len(ms) - 1} more manifests)" if len(ms) > 1 else ""
        runs = quarantined.get(blob)
        if runs:
            action = (
                f"it is in quarantine: `regsweep quarantine restore STORE {runs[0]}` brings it back"
            )
        else:
            action = (
                "push the image again (the client uploads the missing blob) or restore the blob "
                "from a backup; regsweep gc refuses to run until it is fixed"
            )
        out.append(
            Finding(
                ERROR,
                "missing-blob",
                repo,
                blob_data_key(blob, ix.root),
                f"manifest {first.manifest} in {repo} references its {first.kind} {blob}"
                f"{more}, whose data is missing: pulling the image fails (BLOB_UNKNOWN)",
                action,
                digest=blob,
            )
        )
    return out


def check_layer_links(ix: _Index, graph_aliases: dict[str, dict[str, str]]) -> list[Finding]:
    """A manifest's config and layers must be linked in its own repository (§3.3): the
    registry serves a blob only through the repository's ``_layers`` link."""
    out: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    for repo, revs in sorted(ix.revisions.items()):
        linked = ix.links.get(repo, _NONE)
        for r in revs.values():
            d = r["target"]
            if d is None or not r["blob_present"]:
                continue
            m = ix.manifests.get(d)
            if m is None or m.problem is not None or m.kind not in ("image", "schema1"):
                continue
            for ref in ix.refs.of(m):
                child = ref.child
                if ref.kind not in ("config", "layer", "blob") or ref.has_urls:
                    continue
                if child in linked or (repo, child) in seen:
                    continue
                canonical = graph_aliases.get(repo, {}).get(child, child)
                if canonical not in ix.stored:
                    continue  # not stored at all: missing-blob
                seen.add((repo, child))
                out.append(
                    Finding(
                        ERROR,
                        "missing-layer-link",
                        repo,
                        layer_link_key(repo, child, ix.root),
                        f"manifest {d} in {repo} references its {ref.kind} {child}, which "
                        f"is stored, but {repo} has no _layers link to it: the registry answers "
                        f"BLOB_UNKNOWN when the image is pulled from {repo}",
                        f"push the image to {repo} again (the client re-links the blob), or "
                        f"write the link file with exactly {child}",
                        digest=child,
                    )
                )
    return out


def check_indexes(ix: _Index) -> list[Finding]:
    """Index children must be revisions of the index's repository (§3.3, §7.13)."""
    out: list[Finding] = []
    for repo, revs in sorted(ix.revisions.items()):
        have = ix.rev_digests.get(repo, _NONE)
        seen: set[str] = set()
        for r in revs.values():
            d = r["target"]
            m = ix.manifests.get(d) if d is not None else None
            if m is None or m.kind != "index" or not r["blob_present"]:
                continue
            for ref in ix.refs.of(m):
                child = ref.child
                if ref.kind != REF_MANIFEST or child in have or child in seen:
                    continue
                seen.add(child)
                platform = f" ({ref.platform})" if ref.platform else ""
                elsewhere = [x for x in ix.repos_of.get(child, []) if x != repo]
                if child not in ix.stored:
                    where = "; its data is not in the store at all"
                elif elsewhere:
                    where = f"; its data is stored (it is in {_and_more(elsewhere)})"
                else:
                    where = "; its data is stored but no repository links it"
                out.append(
                    Finding(
                        WARNING,
                        "index-child-missing",
                        repo,
                        revision_link_key(repo, child, ix.root),
                        f"index {d} in {repo} lists manifest {child}{platform}, which is not in "
                        f"{repo}{where}: pulling that platform from {repo} fails",
                        f"push the missing image to {repo} by digest; ignore this if the "
                        "registry accepts partial indexes (Distribution 3 "
                        "validation.manifests.indexes.platforms: none or list)",
                        digest=child,
                    )
                )
    return out


def check_referrers(ix: _Index) -> list[Finding]:
    """Referrers and signature tags whose subject is gone (§3.4, prior-art §5.9)."""
    out: list[Finding] = []
    for repo, revs in sorted(ix.revisions.items()):
        for r in sorted(revs.values(), key=lambda x: x["key"]):
            d = r["target"]
            m = ix.manifests.get(d) if d is not None else None
            if m is None or not r["blob_present"] or m.subject is None:
                continue
            if ix.is_present(m.subject):
                continue
            out.append(
                Finding(
                    WARNING,
                    "orphan-referrer",
                    repo,
                    r["key"],
                    f"manifest {d} in {repo} refers to subject {m.subject} (OCI referrer"
                    f"{', ' + m.artifact_type if m.artifact_type else ''}), which is in no "
                    "repository: it is left over from a deleted image",
                    "`regsweep gc --delete-untagged` removes it, and what only it uses, when no "
                    "tag points to it",
                    digest=d,
                )
            )
    for repo, tags in sorted(ix.tags.items()):
        for tag, t in sorted(tags.items()):
            subject = referrer_tag_subject(tag)
            if subject is None or ix.is_present(subject):
                continue
            suffix = tag.rsplit(".", 1)[1] if tag.endswith((".sig", ".att", ".sbom")) else None
            out.append(
                Finding(
                    WARNING,
                    "orphan-signature-tag",
                    repo,
                    t["key"],
                    f"{_SIGNATURE_WHAT[suffix]} {tag} of {repo} names subject {subject}, which "
                    "is in no repository: it is left over from a deleted image",
                    "`regsweep gc --delete-untagged` removes it; or delete the tag",
                    digest=t["digest"],
                )
            )
    return out


def check_names(ix: _Index, snap: Snapshot) -> list[Finding]:
    """Repository names and tags that collide ignoring case (§7.4): one object on a
    case-insensitive filesystem (macOS, SMB, NTFS), two here."""
    out: list[Finding] = []
    groups: dict[str, list[str]] = defaultdict(list)
    for r in rows(snap["repositories"]):
        groups[r["repository"].casefold()].append(r["repository"])
    for names in groups.values():
        if len(names) < 2:
            continue
        names.sort()
        out.append(
            Finding(
                WARNING,
                "case-collision",
                names[0],
                repo_key(names[0], ix.root),
                f"repositories {', '.join(names)} differ only in case: copied to a "
                "case-insensitive filesystem they merge into one",
                "rename one of them (push it under a new name and delete the old one)",
            )
        )
    for repo, tags in sorted(ix.tags.items()):
        tag_groups: dict[str, list[str]] = defaultdict(list)
        for tag in tags:
            tag_groups[tag.casefold()].append(tag)
        for names in tag_groups.values():
            if len(names) < 2:
                continue
            names.sort()
            out.append(
                Finding(
                    WARNING,
                    "case-collision",
                    repo,
                    tags[names[0]]["key"],
                    f"tags {', '.join(names)} of {repo} differ only in case: copied to a "
                    "case-insensitive filesystem they merge into one",
                    "keep one spelling: push the image under it and delete the others",
                )
            )
    return out


_ANOMALY_ACTIONS = {
    "foreign-key": (
        "Distribution never writes it: find out which tool did; regsweep never deletes it",
        "{detail}: a key foreign to Distribution's layout",
    ),
    "tmp-file": (
        "`regsweep gc` removes it after the grace period",
        "{detail}: Distribution 3.1+ writes <name>.<uuid>.tmp and renames it; a crash leaves it",
    ),
    "legacy-signature": ("nothing needs it; it is harmless", "{detail}"),
    "invalid-repository-name": (
        "move its directory to a valid name, or delete it if nothing needs it; regsweep gc "
        "keeps everything it links (fail closed)",
        "{detail}",
    ),
    "foreign-multipart-upload": (
        "abort it (aws s3api abort-multipart-upload) if nothing is writing it",
        "{detail}",
    ),
}


_CHECKED_ELSEWHERE = pa.array(["bad-link", "bad-manifest"])  # from their tables, above


def check_anomalies(snap: Snapshot) -> list[Finding]:
    """The scan's own anomalies, except links and manifests (checked above from their tables)."""
    out: list[Finding] = []
    anomalies = snap["anomalies"]
    others = by_value(anomalies["kind"], lambda v: pc.invert(pc.is_in(v, _CHECKED_ELSEWHERE)))
    for a in rows(anomalies.filter(pc.fill_null(others, True))):
        kind = a["kind"]
        action, template = _ANOMALY_ACTIONS.get(kind, ("", "{detail}"))
        out.append(
            Finding(
                a["severity"] or WARNING,
                kind,
                a["repository"],
                a["key"],
                template.format(detail=a["detail"] or kind),
                action,
                size=a["size"],
            )
        )
    return out


def check_uploads(ix: _Index, snap: Snapshot, settings: CheckSettings) -> list[Finding]:
    """Uploads started longer ago than ``upload_age`` (§4.8, §7.16)."""
    out: list[Finding] = []
    cutoff = settings.now - settings.upload_age
    for u in rows(snap["uploads"]):
        started = u["started_at"]
        if started is None or started >= cutoff:
            continue
        age = settings.now - started
        days = age.total_seconds() / 86400
        size = u["data_size"] if u["data_size"] is not None else sum(u["key_sizes"] or [])
        since = f"started {days:.1f} days ago (by its {u['started_source']})"
        if u["multipart_key"]:
            out.append(
                Finding(
                    WARNING,
                    "stale-multipart-upload",
                    u["repository"],
                    u["multipart_key"],
                    f"upload {u['upload_id']} in {u['repository']} {since}; its data is an "
                    f"incomplete S3 multipart upload ({u['multipart_upload_id']}): invisible to "
                    "listings, it costs storage until aborted, and Distribution never aborts it",
                    "`regsweep gc` aborts it; or add a bucket lifecycle rule "
                    "AbortIncompleteMultipartUpload",
                    size=size,
                )
            )
        else:
            out.append(
                Finding(
                    INFO,
                    "stale-upload",
                    u["repository"],
                    f"{repo_key(u['repository'], ix.root)}_uploads/{u['upload_id']}/",
                    f"upload {u['upload_id']} in {u['repository']} {since} and never finished",
                    "`regsweep gc` removes it (so does a running registry's upload purger)",
                    size=size,
                )
            )
    return out


def _time_arrays(snap: Snapshot) -> list[pa.Array]:
    # The blobs' times a part at a time: the whole table (its digests) is not needed here.
    arrays = [
        chunk
        for part in (snap.parts("blobs", ("last_modified",)) if "blobs" in snap else ())
        for chunk in part.column("last_modified").chunks
    ]
    for table in ("revisions", "layer_links", "tags", "tag_history"):
        if table in snap:
            arrays.append(snap[table].column("last_modified").combine_chunks())
    if "uploads" in snap:
        flat = pc.list_flatten(snap["uploads"].column("key_times"))
        arrays.append(flat.combine_chunks() if isinstance(flat, pa.ChunkedArray) else flat)
    return [a.cast(pa.timestamp("ms", tz="UTC")) for a in arrays]


_RUN_BLOCK = 1 << 18  # sorted values looked at a time by _longest_run


def _longest_run(values: np.ndarray) -> tuple[int, int]:
    """(value, count) of the longest run of equal values in ``values`` (sorted, not empty),
    the first (smallest) of equally long ones; a block at a time, a run carried across the
    blocks it spans, so that the run lengths of mostly distinct values are never all held."""
    best, best_count = int(values[0]), 0
    run, run_count = best, 0
    for lo in range(0, len(values), _RUN_BLOCK):
        part = values[lo : lo + _RUN_BLOCK]
        edges = np.concatenate(([0], np.flatnonzero(part[1:] != part[:-1]) + 1, [len(part)]))
        lengths = np.diff(edges)
        if part[0] == run:
            lengths[0] += run_count  # the run from the block before goes on
        elif run_count > best_count:
            best, best_count = run, run_count
        if len(lengths) > 1:  # the runs that end in this block
            i = int(np.argmax(lengths[:-1]))
            if lengths[i] > best_count:
                best, best_count = int(part[edges[i]]), int(lengths[i])
        run, run_count = int(part[-1]), int(lengths[-1])
    if run_count > best_count:
        best, best_count = run, run_count
    return best, best_count


def check_timestamps(ix: _Index, snap: Snapshot, settings: CheckSettings) -> list[Finding]:
    """A copy without times (cp without -p, aws s3 sync, azcopy) gives most objects one
    timestamp; gc's grace period and age-based retention then mean nothing (§5)."""
    arrays = [a for a in _time_arrays(snap) if len(a)]
    if not arrays:
        return []
    # Milliseconds in one numpy array, sorted in place. A store's times are mostly distinct:
    # counting them in a hash table (Arrow's value_counts) held ~60 MiB at 1M objects, the
    # peak of the scheduled job there; a Python dict each had been ~50 MiB at 900k.
    times = np.concatenate(
        [np.asarray(a.drop_null().cast(pa.int64()).to_numpy(), np.int64) for a in arrays]
    )
    del arrays
    total = len(times)
    if total < settings.timestamp_min_objects:
        return []
    times.sort()
    top, count = _longest_run(times)
    share = count / total
    if share < settings.timestamp_share:
        return []
    when = from_epoch_ms(top)
    return [
        Finding(
            WARNING,
            "untrustworthy-timestamps",
            None,
            ix.root,
            f"{count} of {total} objects ({share:.0%}) carry the same time "
            f"{when:%Y-%m-%d %H:%M:%S}Z: the store was probably copied without its times "
            "(cp without -p, aws s3 sync, azcopy), so ages (gc's grace period, retention by "
            "age) cannot be told from them",
            "run gc with a --grace longer than the time since the copy, or restore the "
            "original times",
        )
    ]


def _quarantine_entries(
    quarantine: Iterable[ObjectInfo], root: str
) -> list[tuple[str, str, ObjectInfo, Any]]:
    """(run id, original key, object, key record) of quarantined registry objects."""
    rel_root = root.lstrip("/")
    out = []
    for obj in quarantine:
        rest = obj.key[len(QUARANTINE_PREFIX) :] if obj.key.startswith(QUARANTINE_PREFIX) else ""
        run_id, _, orig = rest.partition("/")
        if not run_id or not orig.startswith(rel_root):
            continue
        out.append((run_id, orig, obj, classify(orig[len(rel_root) :])))
    return out


def quarantined_blobs(quarantine: Iterable[ObjectInfo], root: str) -> dict[str, list[str]]:
    """Blob digest -> quarantine runs holding its data."""
    out: dict[str, list[str]] = defaultdict(list)
    for run_id, _, _, rec in _quarantine_entries(quarantine, root):
        if rec.kind is KeyKind.BLOB_DATA and rec.digest is not None:
            out[rec.digest].append(run_id)
    return {d: sorted(set(r)) for d, r in out.items()}


# The columns whose digests the registry references (see check_quarantine).
_REFERENCING = {
    "layer_links": ("target",),
    "revisions": ("digest", "target"),
    "tags": ("digest",),
}


def check_quarantine(
    ix: _Index, snap: Snapshot, marked: MarkResult, quarantine: Iterable[ObjectInfo]
) -> list[Finding]:
    """Quarantined objects the registry needs again (invariant 7): a push or a restore of
    something else made them referenced, and no live copy exists."""
    entries = _quarantine_entries(quarantine, ix.root)
    if not entries:
        return []
    graph, reach = marked.graph, marked.reach_at
    # By place: what the registry references (the mark's closures, and what links and tags
    # name), and the place of each quarantined object's digest.
    referenced = np.zeros(len(graph.named), bool)
    for at in reach.by_repo.values():
        referenced[at] = True
    for table, columns in _REFERENCING.items():
        for c in columns:
            at = graph.column_places(snap[table][c])
            referenced[at[at >= 0]] = True
    digests = sorted({rec.digest for *_, rec in entries if rec.digest is not None})
    place = dict(zip(digests, graph.places_of(digests).tolist(), strict=True))

    def reached(repo: str, d: str) -> bool:
        return has_place(reach.get(repo), place[d])

    out: list[Finding] = []
    for run_id, orig, obj, rec in entries:
        d, repo = rec.digest, rec.repo
        need: str | None = None
        if rec.kind is KeyKind.BLOB_DATA and d is not None:
            at = place[d]
            if at >= 0 and referenced[at] and not graph.stored(at):
                need = f"blob {d}, which the registry references again and no longer stores"
        elif rec.kind is KeyKind.LAYER_LINK and d is not None and repo is not None:
            if d not in ix.links.get(repo, _NONE) and reached(repo, d):
                need = f"the _layers link of {d} in {repo}, which a manifest of {repo} needs again"
        elif rec.kind is KeyKind.REVISION_LINK and d is not None and repo is not None:
            tagged = any(t["digest"] == d for t in ix.tags.get(repo, {}).values())
            if d not in ix.rev_digests.get(repo, _NONE) and (tagged or reached(repo, d)):
                need = f"the revision link of {d} in {repo}, which a tag or index of {repo} needs"
        if need is None:
            continue
        out.append(
            Finding(
                ERROR,
                "quarantine-referenced",
                repo,
                obj.key,
                f"quarantine run {run_id} holds {need}: pulls that need it fail until it is "
                f"restored (it came from {orig})",
                f"`regsweep quarantine restore STORE {run_id}`; do not purge that run",
                digest=d,
                size=obj.size,
            )
        )
    return out


def check_sizes(ix: _Index, snap: Snapshot) -> list[Finding]:
    """Descriptor sizes against stored blob sizes: a truncated or replaced blob. Compared
    column-wise (a store has hundreds of thousands of references), by the graph's sizes."""
    rt, graph = snap["references"], ix.graph
    child_at = graph.column_places(rt["child"])
    stored = np.where(child_at >= 0, graph.sizes[child_at], -1)
    declared = np.asarray(one_array(pc.fill_null(rt["size"], 0)), np.int64)
    described = ~np.asarray(one_array(pc.is_null(rt["size"])), bool)
    wrong = (stored >= 0) & described & (declared != stored)
    if not wrong.any():
        return []
    picked = pa.array(np.flatnonzero(wrong))
    by: dict[str, list[tuple[str, int]]] = defaultdict(list)
    sizes: dict[str, int] = {}
    for parent, child, size, stored_size in zip(
        pylist(rt["parent"].take(picked)),
        pylist(rt["child"].take(picked)),
        declared[wrong].tolist(),
        stored[wrong].tolist(),
        strict=True,
    ):
        by[child].append((parent, size))
        sizes[child] = stored_size
    out: list[Finding] = []
    for child, parents in sorted(by.items()):
        stored_size = sizes[child]
        parent, size = sorted(parents)[0]
        repos = ix.repos_of.get(parent, [])
        more = f" (and {len(parents) - 1} more descriptors)" if len(parents) > 1 else ""
        out.append(
            Finding(
                ERROR,
                "size-mismatch",
                repos[0] if repos else None,
                ix.blob_key(child),
                f"blob {child} is {stored_size} bytes, but manifest {parent} describes it as "
                f"{size} bytes{more}: its data was truncated or replaced, and clients that "
                "check sizes reject it",
                "restore the blob from a backup or push the image again; run the audit with "
                "--verify-digests to check its content",
                digest=child,
                size=stored_size,
            )
        )
    return out


def check_unreferenced(ix: _Index, marked: MarkResult) -> list[Finding]:
    graph = ix.graph
    live = marked.live_at & (graph.sizes >= 0)  # stored blobs something live needs
    count = graph.stored_blobs - int(live.sum())
    if not count:
        return []
    size = graph.stored_bytes - int(graph.sizes[live].sum())
    return [
        Finding(
            INFO,
            "unreferenced-blobs",
            None,
            None,
            f"{count} blobs ({size} bytes) are referenced by no manifest revision",
            "`regsweep gc` reclaims them once they are older than its grace period",
            size=size,
        )
    ]


def run_checks(
    snap: Snapshot,
    marked: MarkResult,
    settings: CheckSettings,
    quarantine: Iterable[ObjectInfo] = (),
) -> list[Finding]:
    """Every consistency check. ``marked`` is ``mark(snap)`` (every revision a root), so
    "live" means "servable by the registry"; its graph is the index's. ``quarantine`` lists
    ``regsweep/quarantine/``."""
    ix = _Index.build(snap, marked.graph)
    q = list(quarantine)
    return [
        *check_missing_blobs(ix, marked, quarantined_blobs(q, ix.root)),
        *check_layer_links(ix, marked.graph.aliases),
        *check_dangling(ix, snap, marked),
        *check_links(ix, snap),
        *check_manifests(ix),
        *check_sizes(ix, snap),
        *check_indexes(ix),
        *check_referrers(ix),
        *check_names(ix, snap),
        *check_anomalies(snap),
        *check_uploads(ix, snap, settings),
        *check_timestamps(ix, snap, settings),
        *check_quarantine(ix, snap, marked, q),
        *check_unreferenced(ix, marked),
    ]
