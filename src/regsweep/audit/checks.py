"""Consistency checks: a Snapshot and its mark in, Findings out. Pure: nothing here touches a
store (the caller lists the quarantine and passes it in), and ``now`` is explicit.

What each check relies on is in storage-layout.md: what must exist at push time (§3.3), what
Distribution leaves behind (§4.6, §4.7), the edge cases of §7, and the timestamps of §5.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

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
from regsweep.layout.manifest import REF_BLOB, REF_CONFIG, REF_LAYER, REF_MANIFEST
from regsweep.scan.graph import (
    NO_PLACES,
    Graph,
    among,
    has_place,
    pair_keys,
    pylist,
    ranges,
    sorted_range,
)
from regsweep.scan.scanner import VANISHED
from regsweep.scan.snapshot import (
    DERIVED_KEYS,
    Snapshot,
    by_value,
    decoded,
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


# The manifest kinds and reference kinds the checks tell apart, as codes (their places here).
_KINDS = ("image", "schema1", "index")
_IMAGE, _SCHEMA1, _INDEX = range(3)
_REF_KINDS = (REF_CONFIG, REF_LAYER, REF_BLOB, REF_MANIFEST)
_BLOB_REF = np.array([0, 1, 2])  # config, layer, blob: what a repository must link
_MANIFEST_REF = 3


def _codes(col: pa.ChunkedArray, values: tuple[str, ...]) -> np.ndarray:
    """Per row of ``col``: the place of its value in ``values``, -1 where null or another."""
    at = by_value(col, lambda v: pc.index_in(v, value_set=pa.array(values, pa.string())))
    return np.asarray(one_array(pc.fill_null(at, -1)).to_numpy(), np.int8)


def _int32(at: np.ndarray) -> np.ndarray:
    """Places and rows, held by the index as 4 bytes each (a store has fewer than 2**31 of
    either): as the graph hands them, 8 bytes, the index was ~75 MiB of the scheduled job's
    audit of a 1M-blob store, its peak."""
    return at.astype(np.int32)


def _flags(col: pa.ChunkedArray) -> np.ndarray:
    """A boolean column as numpy, null as False."""
    return np.asarray(one_array(pc.fill_null(col, False)).to_numpy(zero_copy_only=False), bool)


def _valid(col: pa.ChunkedArray) -> np.ndarray:
    """Per row: not null."""
    return np.asarray(one_array(pc.is_valid(col)).to_numpy(zero_copy_only=False), bool)


@dataclass
class _Links:
    """The rows of a link table (revisions or tags) as places, in the snapshot's order, for
    the checks to compare column-wise: a Python object per row (a dict, then a slotted row)
    was ~100 MiB of an audit of a 1M-object store (94k revisions, 65k tags). Strings and keys
    are made only for the rows a finding names (``values``, ``_Index.keys``)."""

    table: pa.Table  # the snapshot's
    repo: np.ndarray  # the repository's id (``_Index.repos``)
    digest: np.ndarray  # the place of the digest: its path's (revisions), what it names (tags)
    target: np.ndarray  # the place of what the link holds (revisions), -1 where none
    present: np.ndarray  # the manifest's data is stored
    problem: np.ndarray  # the link has a problem

    def values(self, column: str, rows: np.ndarray) -> list[Any]:
        """The values of ``column`` at ``rows``, as Python values."""
        values: list[Any] = decoded(self.table[column].take(pa.array(rows, pa.int64()))).to_pylist()
        return values


@dataclass
class _Index:
    """The snapshot's revisions, tags, ``_layers`` links, manifests and references as numpy
    arrays over the graph's places (its sorted ``named`` digests) and repository ids, looked
    up by sorted (repository, place) keys (``graph.pair_keys``): a few bytes a row. Digests, names and keys
    are made as strings only for what a finding names."""

    root: str
    graph: Graph  # the mark's
    repos: list[str]  # every repository a link names, sorted: its id is its place here
    repo_id: dict[str, int]
    revisions: _Links
    tags: _Links
    rev_keys: np.ndarray  # sorted (repo, place) keys of revisions' path digests and targets
    tag_keys: np.ndarray  # sorted (repo, place) keys of what tags name
    link_keys: np.ndarray  # sorted (repo, place) keys of ``_layers`` links' path digests
    manifests: pa.Table  # the snapshot's
    # The snapshot, whose references (in a scratch file, memory-mapped) are read again where a
    # check needs a column of them: held here, every page of them read while the index was
    # built stayed resident through the audit (~15 MiB at 1.2M references).
    snap: Snapshot
    manifest_row: np.ndarray  # per place: its row of ``manifests``, -1 where none
    kind: np.ndarray  # per manifest row: its place in _KINDS, -1 for another kind
    broken: np.ndarray  # per manifest row: it has a problem
    has_subject: np.ndarray  # per manifest row: it names a subject
    # The references by parent: a manifest row's are ``ref_lo[row]`` to ``ref_hi[row]`` of
    # ``ref_row`` (rows of the snapshot's references) and the columns beside it.
    ref_row: np.ndarray
    ref_child: np.ndarray  # the child's place
    ref_kind: np.ndarray  # its place in _REF_KINDS, -1 for another kind
    ref_urls: np.ndarray  # the descriptor has urls
    ref_lo: np.ndarray
    ref_hi: np.ndarray
    present: np.ndarray  # per place: a manifest with a revision link and data, in any repository
    # (place, repository id) of each revision's path digest and target, sorted (``repos_of``).
    rev_places: np.ndarray
    rev_repos: np.ndarray

    @classmethod
    def build(cls, snap: Snapshot, graph: Graph) -> _Index:
        root = str(snap.meta.get("layout_root", "docker/registry/v2/"))
        link_tables = ("revisions", "tags", "layer_links")
        repos = sorted(
            {
                r
                for t in link_tables
                for r in pc.unique(snap[t]["repository"]).to_pylist()
                if r is not None
            }
        )
        names = pa.array(repos, pa.string())

        def repo_ids(t: pa.Table) -> np.ndarray:
            at = by_value(t["repository"], lambda v: pc.index_in(v, value_set=names))
            return np.asarray(one_array(pc.fill_null(at, -1)).to_numpy(), np.int32)

        def keys(repo: np.ndarray, at: np.ndarray) -> np.ndarray:
            """Sorted distinct (repo, place) keys of the rows that have both."""
            found = pair_keys(repo, at)
            return np.unique(found[found >= 0])

        rv = snap["revisions"]
        revisions = _Links(
            rv,
            repo_ids(rv),
            _int32(graph.column_places(rv["digest"])),
            _int32(graph.column_places(rv["target"])),
            _flags(rv["blob_present"]),
            _valid(rv["problem"]),
        )
        tg = snap["tags"]
        tags = _Links(
            tg,
            repo_ids(tg),
            _int32(graph.column_places(tg["digest"])),
            np.full(tg.num_rows, -1, np.int32),
            np.zeros(tg.num_rows, bool),  # (not a tags column)
            _valid(tg["problem"]),
        )
        if (revisions.repo < 0).any() or (tags.repo < 0).any():
            # A scan derives each from the link's path; a -1 would read as the last repository.
            raise ValueError("a revision or tag row of the snapshot names no repository")
        ll = snap["layer_links"]
        link_keys = keys(repo_ids(ll), graph.column_places(ll["digest"]))
        both = np.concatenate([revisions.digest, revisions.target])
        twice = np.concatenate([revisions.repo, revisions.repo])
        named = (both >= 0) & (twice >= 0)
        pairs = np.unique(np.stack([both[named], twice[named]]), axis=1)  # by place, then repo
        present = np.zeros(len(graph.named), bool)
        present[revisions.target[revisions.present & (revisions.target >= 0)]] = True
        # References by parent (the snapshot holds them so; sorted again here, stably, so as
        # not to depend on it): a manifest's are the rows from its first to its last.
        rt = snap["references"]
        parent_at = _int32(graph.column_places(rt["parent"]))
        ref_row = _int32(np.argsort(parent_at, kind="stable"))
        parent_at = parent_at[ref_row]
        m = snap["manifests"]
        m_at = _int32(graph.column_places(m["digest"]))
        manifest_row = np.full(len(graph.named), -1, np.int32)
        manifest_row[m_at[m_at >= 0]] = np.flatnonzero(m_at >= 0)
        return cls(
            root=root,
            graph=graph,
            repos=repos,
            repo_id={r: i for i, r in enumerate(repos)},
            revisions=revisions,
            tags=tags,
            rev_keys=keys(twice, both),
            tag_keys=keys(tags.repo, tags.digest),
            link_keys=link_keys,
            manifests=m,
            snap=snap,
            manifest_row=manifest_row,
            kind=_codes(m["kind"], _KINDS),
            broken=_valid(m["problem"]),
            has_subject=_valid(m["subject"]),
            ref_row=ref_row,
            ref_child=_int32(graph.column_places(rt["child"]))[ref_row],
            ref_kind=_codes(rt["kind"], _REF_KINDS)[ref_row],
            ref_urls=_flags(rt["has_urls"])[ref_row],
            ref_lo=_int32(np.where(m_at >= 0, np.searchsorted(parent_at, m_at, "left"), 0)),
            ref_hi=_int32(np.where(m_at >= 0, np.searchsorted(parent_at, m_at, "right"), 0)),
            present=present,
            rev_places=pairs[0],
            rev_repos=pairs[1],
        )

    # -- look-ups ----------------------------------------------------------------------------

    def has(self, keys: np.ndarray, repo: str | None, at: int) -> bool:
        """``keys`` (``rev_keys``, ``tag_keys`` or ``link_keys``) hold the place ``at`` in
        the repository named ``repo``."""
        repo_id = self.repo_id.get(repo, -1) if repo is not None else -1
        return bool(among(pair_keys(np.array([repo_id]), np.array([at])), keys)[0])

    def stored(self, at: np.ndarray) -> np.ndarray:
        """Per place of ``at``: a blob is stored there (False for -1)."""
        return np.asarray((at >= 0) & (self.graph.sizes[np.maximum(at, 0)] >= 0), bool)

    def digests(self, at: np.ndarray | list[int]) -> list[str]:
        """The digests at places ``at`` (each >= 0)."""
        digests: list[str] = self.graph.digests_at(np.asarray(at, np.int64)).to_pylist()
        return digests

    def place(self, digest: str) -> int:
        return int(self.graph.places_of([digest])[0])

    def keys(self, table: str, rows: np.ndarray) -> list[str]:
        """The keys of rows ``rows`` of the link table ``table``: the snapshot's, or built
        from their columns where it holds none (``DERIVED_KEYS``)."""
        links = self.revisions if table == "revisions" else self.tags
        shape = DERIVED_KEYS[table]
        raw = links.values("key", rows) if "key" in links.table.column_names else []
        built = zip(*(links.values(c, rows) for c in shape.columns), strict=True)
        return [
            k if k is not None else shape.key(self.root, *values)
            for k, values in itertools.zip_longest(raw, built)
        ]

    def refs_of(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For the manifest rows ``rows`` (each >= 0): (which of ``rows``, reference) of each
        of their references, by row and then in the manifest's order."""
        lo, hi = self.ref_lo[rows], self.ref_hi[rows]
        return np.repeat(np.arange(len(rows)), hi - lo), ranges(lo, hi - lo)

    def repos_of(self, at: int) -> list[str]:
        """The repositories with a revision link of the manifest at place ``at``, sorted."""
        lo, hi = np.searchsorted(self.rev_places, [at, at + 1]) if at >= 0 else (0, 0)
        return [self.repos[r] for r in self.rev_repos[lo:hi].tolist()]

    def blob_key(self, digest: str) -> str:
        return blob_data_key(digest, self.root)

    def are_present(self, subjects: list[str]) -> list[bool]:
        """Per subject: a manifest with a revision link and data in some repository. A sha512
        subject named by a tag is truncated to 64 hex characters, so match it as a prefix."""
        at = self.graph.places_of(subjects)
        found = (at >= 0) & self.present[np.maximum(at, 0)]
        return [
            here or (s.startswith("sha512:") and self._present_with_prefix(s))
            for s, here in zip(subjects, found.tolist(), strict=True)
        ]

    def _present_with_prefix(self, prefix: str) -> bool:
        # The named digests that start with ``prefix`` are a range of the sorted ``named``.
        lo, hi = sorted_range(self.graph.named, pa.array([prefix, prefix + "\U0010ffff"]))
        return bool(self.present[lo:hi].any())


# -- the checks ------------------------------------------------------------------------------


def check_links(ix: _Index, snap: Snapshot) -> list[Finding]:
    """Malformed link files (storage-layout.md §1.4, §7.8): Distribution cannot read them."""
    out: list[Finding] = []
    for table, what in _LINK_WHAT.items():
        t = snap[table]
        # Picked out in Arrow: a store listed from a stale inventory can have many links that
        # vanished since, a Python row each if converted (they are not malformed).
        bad = by_value(t["problem"], lambda v: pc.not_equal(v, VANISHED))
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
    rows = np.flatnonzero(ix.broken)
    problems = decoded(ix.manifests["problem"].take(pa.array(rows, pa.int64()))).to_pylist()
    picked = np.array(
        [r for r, p in zip(rows.tolist(), problems, strict=True) if p != VANISHED], np.int64
    )
    found = [
        (digest, problem, size)
        for digest, problem, size in zip(
            *(
                decoded(ix.manifests[c].take(pa.array(picked, pa.int64()))).to_pylist()
                for c in ("digest", "problem", "size")
            ),
            strict=True,
        )
    ]
    places = ix.graph.places_of([d for d, _, _ in found])
    out: list[Finding] = []
    for (digest, problem, size), at in sorted(zip(found, places.tolist(), strict=True)):
        repos = ix.repos_of(at)
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
                    f"manifest {digest}{where} is {size} bytes, over the read cap "
                    f"({problem}): regsweep could not check what it references, so gc keeps "
                    "its repositories whole",
                    "raise --max-manifest-bytes if it is a real manifest (Distribution itself "
                    "accepts at most 4 MiB)",
                    digest=digest,
                    size=size,
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
                    size=size,
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
                    size=size,
                )
            )
    return out


def _index_users(ix: _Index, wanted: np.ndarray) -> dict[int, list[int]]:
    """(repo, place) key of a manifest among ``wanted`` (sorted keys) -> the places of the
    indexes of that repository that list it, in the order of the revisions and then of each
    index's children."""
    rv = ix.revisions
    rows = np.flatnonzero(rv.digest >= 0)
    mrow = ix.manifest_row[rv.digest[rows]]
    rows, mrow = rows[mrow >= 0], mrow[mrow >= 0]
    which, ref = ix.refs_of(mrow)
    rows = rows[which]
    is_child = ix.ref_kind[ref] == _MANIFEST_REF
    rows, ref = rows[is_child], ref[is_child]
    keys = pair_keys(rv.repo[rows], ix.ref_child[ref])
    hit = among(keys, wanted)
    users: dict[int, list[int]] = defaultdict(list)
    for key, d in zip(keys[hit].tolist(), rv.digest[rows[hit]].tolist(), strict=True):
        users[key].append(d)
    return users


def check_dangling(ix: _Index, snap: Snapshot, marked: MarkResult) -> list[Finding]:
    """Revision links, tags and ``_layers`` links whose target is gone (§4.6, §7.7)."""
    out: list[Finding] = []
    rv, tg = ix.revisions, ix.tags
    # A malformed link is reported as such. By repository, then by the digest of the path (a
    # place's order is its digest's).
    gone = np.flatnonzero((rv.target >= 0) & ~rv.present & ~rv.problem)
    gone = gone[np.lexsort((rv.digest[gone], rv.repo[gone]))]
    if len(gone):
        wanted = pair_keys(rv.repo[gone], rv.target[gone])
        distinct = np.unique(wanted)
        tag_keys = pair_keys(tg.repo, tg.digest)
        hit = np.flatnonzero(among(tag_keys, distinct))
        tagged: dict[int, list[str]] = defaultdict(list)
        for key, tag in zip(tag_keys[hit].tolist(), tg.values("tag", hit), strict=True):
            tagged[key].append(tag)
        users = _index_users(ix, distinct)
        targets, keys = ix.digests(rv.target[gone]), ix.keys("revisions", gone)
        for row, key, target, link in zip(
            gone.tolist(), wanted.tolist(), targets, keys, strict=True
        ):
            repo = ix.repos[rv.repo[row]]
            tags = sorted(tagged.get(key, []))
            indexes = ix.digests(users.get(key, []))
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
                    link,
                    detail,
                    action,
                    digest=target,
                )
            )
    known = among(pair_keys(tg.repo, tg.digest), ix.rev_keys)
    odd = np.flatnonzero((tg.digest >= 0) & ~tg.problem & ~(known & ix.stored(tg.digest)))
    found = sorted(
        zip(
            [ix.repos[r] for r in tg.repo[odd].tolist()],
            tg.values("tag", odd),
            ix.digests(tg.digest[odd]),
            ix.keys("tags", odd),
            known[odd].tolist(),
            strict=True,
        )
    )
    for repo, tag, d, key, is_known in found:
        if is_known:
            out.append(
                Finding(
                    ERROR,
                    "dangling-tag",
                    repo,
                    key,
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
                    key,
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


# Manifests whose references _unlinked expands at a time: all at once, with the arrays that
# pick the few it keeps, were the audit's peak on a store of 256k manifests (~40 MiB).
_EXPAND_ROWS = 1 << 15


def _unlinked(
    ix: _Index, kinds: tuple[int, ...], keys: np.ndarray, *, manifests: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(revision row, reference) of each reference of a manifest of ``kinds`` whose revision
    link's data is stored to a child that ``keys`` (``link_keys`` or ``rev_keys``) do not hold
    in the revision's repository; by repository, then in the order of the revisions and of
    their manifests' references. ``manifests``: the references to child manifests (of an
    index); else those to a config, layer or blob without urls, of a manifest that has no
    problem."""
    rv = ix.revisions
    rows = np.flatnonzero(rv.present & (rv.target >= 0))
    rows = rows[np.argsort(rv.repo[rows], kind="stable")]
    mrow = ix.manifest_row[rv.target[rows]]
    ok = mrow >= 0
    ok[ok] = np.isin(ix.kind[mrow[ok]], kinds)
    if not manifests:
        ok[ok] = ~ix.broken[mrow[ok]]
    rows, mrow = rows[ok], mrow[ok]
    found: list[tuple[np.ndarray, np.ndarray]] = [(NO_PLACES, NO_PLACES)]
    for lo in range(0, len(rows), _EXPAND_ROWS):
        which, ref = ix.refs_of(mrow[lo : lo + _EXPAND_ROWS])
        at = rows[lo : lo + _EXPAND_ROWS][which]
        if manifests:
            picked = ix.ref_kind[ref] == _MANIFEST_REF
        else:
            picked = np.isin(ix.ref_kind[ref], _BLOB_REF) & ~ix.ref_urls[ref]
        at, ref = at[picked], ref[picked]
        absent = ~among(pair_keys(rv.repo[at], ix.ref_child[ref]), keys)
        found.append((at[absent], ref[absent]))
    return np.concatenate([r for r, _ in found]), np.concatenate([f for _, f in found])


def check_layer_links(ix: _Index, graph_aliases: dict[str, dict[str, str]]) -> list[Finding]:
    """A manifest's config and layers must be linked in its own repository (§3.3): the
    registry serves a blob only through the repository's ``_layers`` link."""
    rv = ix.revisions
    rows, ref = _unlinked(ix, (_IMAGE, _SCHEMA1), ix.link_keys, manifests=False)
    out: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    for repo_id, d, child, kind in zip(
        rv.repo[rows].tolist(),
        ix.digests(rv.target[rows]),
        ix.digests(ix.ref_child[ref]),
        ix.ref_kind[ref].tolist(),
        strict=True,
    ):
        repo = ix.repos[repo_id]
        if (repo, child) in seen:
            continue
        canonical = graph_aliases.get(repo, {}).get(child, child)
        if not ix.graph.stored(ix.place(canonical)):
            continue  # not stored at all: missing-blob
        seen.add((repo, child))
        what = _REF_KINDS[kind]
        out.append(
            Finding(
                ERROR,
                "missing-layer-link",
                repo,
                layer_link_key(repo, child, ix.root),
                f"manifest {d} in {repo} references its {what} {child}, which "
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
    rv = ix.revisions
    rows, ref = _unlinked(ix, (_INDEX,), ix.rev_keys, manifests=True)
    platforms = decoded(
        ix.snap["references"]["platform"].take(pa.array(ix.ref_row[ref], pa.int64()))
    ).to_pylist()
    out: list[Finding] = []
    seen: set[tuple[int, int]] = set()
    for repo_id, d, child_at, child, platform in zip(
        rv.repo[rows].tolist(),
        ix.digests(rv.target[rows]),
        ix.ref_child[ref].tolist(),
        ix.digests(ix.ref_child[ref]),
        platforms,
        strict=True,
    ):
        if (repo_id, child_at) in seen:
            continue
        seen.add((repo_id, child_at))
        repo = ix.repos[repo_id]
        platform = f" ({platform})" if platform else ""
        elsewhere = [x for x in ix.repos_of(child_at) if x != repo]
        if not ix.graph.stored(child_at):
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


# A tag that may name a referrer's subject (``referrer_tag_subject`` decides), picked out in
# Arrow: a store has many tags and few such.
_SUBJECT_TAG = "sha(256|512)-"


def check_referrers(ix: _Index) -> list[Finding]:
    """Referrers and signature tags whose subject is gone (§3.4, prior-art §5.9)."""
    rv, tg = ix.revisions, ix.tags
    rows = np.flatnonzero(rv.present & (rv.target >= 0))
    mrow = ix.manifest_row[rv.target[rows]]
    ok = mrow >= 0
    ok[ok] = ix.has_subject[mrow[ok]]
    rows, mrow = rows[ok], mrow[ok]
    picked = pa.array(mrow, pa.int64())
    subjects = decoded(ix.manifests["subject"].take(picked)).to_pylist()
    types = decoded(ix.manifests["artifact_type"].take(picked)).to_pylist()
    gone = [i for i, here in enumerate(ix.are_present(subjects)) if not here]
    at = rows[gone]
    found = sorted(
        zip(
            [ix.repos[r] for r in rv.repo[at].tolist()],
            ix.keys("revisions", at),
            ix.digests(rv.target[at]),
            [subjects[i] for i in gone],
            [types[i] for i in gone],
            strict=True,
        )
    )
    out: list[Finding] = []
    for repo, key, d, subject, artifact_type in found:
        out.append(
            Finding(
                WARNING,
                "orphan-referrer",
                repo,
                key,
                f"manifest {d} in {repo} refers to subject {subject} (OCI referrer"
                f"{', ' + artifact_type if artifact_type else ''}), which is in no "
                "repository: it is left over from a deleted image",
                "`regsweep gc --delete-untagged` removes it, and what only it uses, when no "
                "tag points to it",
                digest=d,
            )
        )
    maybe = by_value(tg.table["tag"], lambda v: pc.match_substring_regex(v, _SUBJECT_TAG))
    rows = np.flatnonzero(_flags(maybe))
    tags = [
        (ix.repos[repo_id], tag, row, subject)
        for repo_id, tag, row in zip(
            tg.repo[rows].tolist(), tg.values("tag", rows), rows.tolist(), strict=True
        )
        if (subject := referrer_tag_subject(tag)) is not None
    ]
    present = ix.are_present([subject for *_, subject in tags])
    orphans = sorted(t for t, here in zip(tags, present, strict=True) if not here)
    at = np.array([row for _, _, row, _ in orphans], np.int64)
    for (repo, tag, _, subject), key, d in zip(
        orphans, ix.keys("tags", at), tg.values("digest", at), strict=True
    ):
        suffix = tag.rsplit(".", 1)[1] if tag.endswith((".sig", ".att", ".sbom")) else None
        out.append(
            Finding(
                WARNING,
                "orphan-signature-tag",
                repo,
                key,
                f"{_SIGNATURE_WHAT[suffix]} {tag} of {repo} names subject {subject}, which "
                "is in no repository: it is left over from a deleted image",
                "`regsweep gc --delete-untagged` removes it; or delete the tag",
                digest=d,
            )
        )
    return out


def _colliding_tags(ix: _Index) -> np.ndarray:
    """The rows of tags that may collide with another of their repository ignoring case:
    those whose lower-case form another shares, found in numpy (a store has many tags and
    few such), and every tag of a repository with a tag that is not ASCII (``casefold``
    folds more than ``lower`` there)."""
    tg = ix.tags
    if not tg.table.num_rows:
        return np.zeros(0, np.int64)
    lower = one_array(by_value(tg.table["tag"], pc.utf8_lower)).dictionary_encode()
    folded = np.asarray(pc.fill_null(lower.indices, -1).to_numpy(), np.int64)
    _, group, count = np.unique(
        tg.repo * (len(lower.dictionary) + 1) + folded, return_inverse=True, return_counts=True
    )
    odd = ~_flags(by_value(tg.table["tag"], pc.string_is_ascii))
    return np.flatnonzero((count[group] > 1) | np.isin(tg.repo, tg.repo[odd]))


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
    tg = ix.tags
    colliding = _colliding_tags(ix)
    by_repo: dict[str, dict[str, int]] = defaultdict(dict)  # repo -> tag -> row, in row order
    for repo_id, tag, row in zip(
        tg.repo[colliding].tolist(), tg.values("tag", colliding), colliding.tolist(), strict=True
    ):
        by_repo[ix.repos[repo_id]][tag] = row
    for repo, tags in sorted(by_repo.items()):
        tag_groups: dict[str, list[str]] = defaultdict(list)
        for tag in tags:
            tag_groups[tag.casefold()].append(tag)
        for names in tag_groups.values():
            if len(names) < 2:
                continue
            names.sort()
            (key,) = ix.keys("tags", np.array([tags[names[0]]], np.int64))
            out.append(
                Finding(
                    WARNING,
                    "case-collision",
                    repo,
                    key,
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


# Links and manifests are checked from their tables, above; a link that was gone when read is
# no finding (not malformed, and the store no longer has it).
_CHECKED_ELSEWHERE = pa.array(["bad-link", "bad-manifest", "vanished-link"])


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


def _time_arrays(snap: Snapshot) -> Iterator[pa.Array]:
    """Every object's time, an array at a time (made again on each call: they are the
    snapshot's columns, or a part of its blobs read back, not copies held)."""
    # The blobs' times a part at a time: the whole table (its digests) is not needed here.
    for part in snap.parts("blobs", ("last_modified",)) if "blobs" in snap else ():
        yield from part.column("last_modified").chunks
    for table in ("revisions", "layer_links", "tags", "tag_history"):
        if table in snap:
            yield from snap[table].column("last_modified").chunks
    if "uploads" in snap:
        flat = pc.list_flatten(snap["uploads"].column("key_times"))
        yield from flat.chunks if isinstance(flat, pa.ChunkedArray) else [flat]


_TIME_SLICE = 1 << 16  # times counted at a time by check_timestamps (see _most_common)


def _ms(a: pa.Array) -> np.ndarray:
    """A time column's values in epoch milliseconds, nulls left out."""
    return np.asarray(
        a.cast(pa.timestamp("ms", tz="UTC")).drop_null().cast(pa.int64()).to_numpy(), np.int64
    )


def _most_common(arrays: Callable[[], Iterable[np.ndarray]], share: float) -> tuple[int, int, int]:
    """(value, count, total) of the most common value of the arrays ``arrays()`` yields (the
    smallest of equally common ones) where it makes at least ``share`` of them all; (0, 0,
    total) where none does. In two passes over the arrays, one at a time: a value that makes
    ``share`` of them all makes ``share`` of at least one array, so the values that do so in
    some array are the only candidates, and the second pass counts those. Every value in one
    sorted array was ~20 MiB at 2.5M objects (Arrow's value_counts, a hash table, ~60)."""
    total, candidates = 0, set()
    for values in arrays():
        total += len(values)
        if len(values):
            distinct, counts = np.unique(values, return_counts=True)
            candidates.update(distinct[counts >= share * len(values)].tolist())
    if not candidates:
        return 0, 0, total
    wanted = np.array(sorted(candidates), np.int64)
    counts = np.zeros(len(wanted), np.int64)
    for values in arrays():
        at = np.searchsorted(wanted, values)
        hit = at < len(wanted)
        hit[hit] = wanted[at[hit]] == values[hit]
        counts += np.bincount(at[hit], minlength=len(wanted))
    best = int(np.argmax(counts))  # the first (smallest value) of the most common
    if counts[best] < share * total:
        return 0, 0, total
    return int(wanted[best]), int(counts[best]), total


def check_timestamps(ix: _Index, snap: Snapshot, settings: CheckSettings) -> list[Finding]:
    """A copy without times (cp without -p, aws s3 sync, azcopy) gives most objects one
    timestamp; gc's grace period and age-based retention then mean nothing (§5)."""
    top, count, total = _most_common(
        lambda: (
            _ms(a.slice(lo, _TIME_SLICE))
            for a in _time_arrays(snap)
            for lo in range(0, len(a), _TIME_SLICE)
        ),
        settings.timestamp_share,
    )
    if not count or total < settings.timestamp_min_objects:
        return []
    share = count / total
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
    referenced[reach.every_place()] = True
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
            if not ix.has(ix.link_keys, repo, place[d]) and reached(repo, d):
                need = f"the _layers link of {d} in {repo}, which a manifest of {repo} needs again"
        elif rec.kind is KeyKind.REVISION_LINK and d is not None and repo is not None:
            tagged = ix.has(ix.tag_keys, repo, place[d])
            if not ix.has(ix.rev_keys, repo, place[d]) and (tagged or reached(repo, d)):
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


_SIZE_SLICE = 1 << 16  # references compared at a time by check_sizes


def check_sizes(ix: _Index, snap: Snapshot) -> list[Finding]:
    """Descriptor sizes against stored blob sizes: a truncated or replaced blob. Compared
    column-wise (a store has hundreds of thousands of references), by the graph's sizes."""
    rt, graph = snap["references"], ix.graph
    # A slice of the references at a time: a place, a stored and a declared size per
    # reference at once, 8 bytes each, were ~30 MiB at 1.2M references, the peak of an audit.
    wrong: list[np.ndarray] = []
    for lo in range(0, rt.num_rows, _SIZE_SLICE):
        part = rt.slice(lo, _SIZE_SLICE)
        child_at = graph.column_places(part["child"])
        stored = np.where(child_at >= 0, graph.sizes[child_at], -1)
        declared = np.asarray(one_array(pc.fill_null(part["size"], 0)), np.int64)
        described = ~np.asarray(one_array(pc.is_null(part["size"])), bool)
        wrong.append(np.flatnonzero((stored >= 0) & described & (declared != stored)) + lo)
    rows = np.concatenate([np.zeros(0, np.int64), *wrong])
    if not len(rows):
        return []
    picked = pa.array(rows)
    stored = graph.sizes[graph.column_places(rt["child"].take(picked))]
    by: dict[str, list[tuple[str, int]]] = defaultdict(list)
    sizes: dict[str, int] = {}
    for parent, child, size, stored_size in zip(
        pylist(rt["parent"].take(picked)),
        pylist(rt["child"].take(picked)),
        pylist(rt["size"].take(picked)),
        stored.tolist(),
        strict=True,
    ):
        by[child].append((parent, size))
        sizes[child] = stored_size
    out: list[Finding] = []
    for child, parents in sorted(by.items()):
        stored_size = sizes[child]
        parent, size = sorted(parents)[0]
        repos = ix.repos_of(ix.place(parent))
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
