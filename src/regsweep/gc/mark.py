"""Mark: what must be kept (design.md invariants 1-3; storage-layout.md §9.1 step 5).

The mark is global for blobs (a blob is kept if anything in any repository needs it) and per
repository for links (a ``_layers`` link in R is needed iff a kept manifest of R needs its blob).

Roots:
- default: every manifest revision of every repository, as Distribution's garbage-collect does;
- ``delete_untagged``: what tags point to, plus referrers of kept manifests (OCI ``subject``) and
  referrer tags (cosign ``sha256-<hex>.sig|.att|.sbom``, referrers-fallback ``sha256-<hex>``)
  whose subject is kept.

Fail closed: a repository with any manifest that cannot be read or understood, a revision
link that cannot be resolved, or an invalid name, is kept whole: all its revisions are roots
and all its ``_layers`` targets are live. A tag whose ``current/link`` cannot be read makes
every digest in its history a root.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from regsweep.heap import heap_trimmed
from regsweep.python_gc import collector_paused
from regsweep.scan.graph import NO_PLACES, Graph, among, has_place, pylist
from regsweep.scan.snapshot import Snapshot, by_value, one_array

# cosign: [prefix]sha256-<hex>.sig|.att|.sbom ; OCI referrers fallback: sha256-<hex>
REFERRER_TAG = re.compile(
    r"^(?P<prefix>.*?)(?P<alg>sha256|sha512)-(?P<hex>[a-f0-9]{64})(?:\.(?P<suffix>sig|att|sbom))?$"
)
# Rows RepoPlaces.rows_in looks up at a time.
_ROWS_AT_ONCE = 1 << 16


def referrer_tag_subject(tag: str) -> str | None:
    """The subject digest a cosign or referrers-fallback tag names, or None for other tags.
    (A sha512 subject is truncated to 64 hex characters in the tag; we return the prefix form.)"""
    m = REFERRER_TAG.match(tag)
    return f"{m['alg']}:{m['hex']}" if m else None


@dataclass(frozen=True, slots=True)
class MissingBlob:
    repository: str
    manifest: str
    blob: str
    kind: str  # config | layer | blob


class RepoPlaces:
    """Per repository, a sorted array of places (``Graph.named``): the mark's closures and
    kept manifests, a few bytes a digest rather than a set of strings per repository (those
    were ~60 MiB for a store of 94k manifests, through the plan). Held as one array of every
    repository's places one after another, in the names' order, 4 bytes each, and where each
    repository's start: an array per repository was thousands of small blocks on the C heap
    that fragmented it (~25 MiB at 7,100 repositories), and ``code << 32 | place`` keys (what
    ``rows_in`` once searched) twice the bytes, ~6 MiB more through the plan of 1.2M."""

    def __init__(self, by_repo: dict[str, np.ndarray]) -> None:
        """From each repository's sorted places; ``by_repo`` is emptied as it is read."""
        self._names = sorted(by_repo)
        self._code = {name: i for i, name in enumerate(self._names)}
        sizes = [len(by_repo[name]) for name in self._names]
        self._bounds = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
        self._places = np.empty(int(self._bounds[-1]), np.int32)
        for code, name in enumerate(self._names):
            self._places[self._bounds[code] : self._bounds[code + 1]] = by_repo.pop(name)

    def get(self, repo: str) -> np.ndarray:
        code = self._code.get(repo)
        if code is None:
            return NO_PLACES
        return self._places[self._bounds[code] : self._bounds[code + 1]].astype(np.int64)

    def items(self) -> Iterator[tuple[str, np.ndarray]]:
        """(repository, its places) in the repositories' order."""
        for name in self._names:
            yield name, self.get(name)

    def every_place(self) -> np.ndarray:
        """The places of every repository, one after another (a place may repeat)."""
        return self._places

    def rows_in(self, repos: pa.ChunkedArray | pa.Array, at: np.ndarray) -> np.ndarray:
        """Per row: the place ``at`` (-1: none) is among the repository's (``repos``, the
        rows' repository names). The rows are taken a repository at a time, each searched
        among that repository's places only; ``_ROWS_AT_ONCE`` rows at a time: the arrays
        of row numbers and codes for all of a store's 256k revisions at once were ~10 MiB,
        the plan's peak."""
        col = one_array(repos) if isinstance(repos, pa.ChunkedArray) else repos
        if not pa.types.is_dictionary(col.type):
            col = col.dictionary_encode()
        code_of = np.array(
            [self._code.get(v, -1) for v in col.dictionary.to_pylist()] + [-1], np.int64
        )
        out = np.zeros(len(col), bool)
        for lo in range(0, len(col), _ROWS_AT_ONCE):
            part = col.slice(lo, _ROWS_AT_ONCE)
            codes = code_of[np.asarray(pc.fill_null(part.indices, len(col.dictionary)), np.int64)]
            out[lo : lo + len(part)] = self._rows_in(codes, at[lo : lo + len(part)])
        return out

    def _rows_in(self, codes: np.ndarray, at: np.ndarray) -> np.ndarray:
        """``rows_in`` for rows of repositories ``codes`` (-1: none of these)."""
        at = np.asarray(at, np.int64)
        out = np.zeros(len(codes), bool)
        rows = np.flatnonzero((codes >= 0) & (at >= 0))
        rows = rows[np.argsort(codes[rows], kind="stable")]  # (a repository's rows together)
        code = codes[rows]
        starts = np.flatnonzero(np.diff(code, prepend=-1)).tolist()
        for lo, hi in itertools.pairwise([*starts, len(rows)]):
            c = int(code[lo])
            mine = self._places[self._bounds[c] : self._bounds[c + 1]]
            out[rows[lo:hi]] = among(at[rows[lo:hi]], mine)
        return out

    def digests(self, graph: Graph) -> dict[str, set[str]]:
        names = graph.names
        return {repo: {names[i] for i in at.tolist()} for repo, at in self.items()}


@dataclass
class MarkResult:
    # The tags kept (repository, tag), rows of the tags table: Arrow, not Python strings
    # (a set of 25 tags is ~2 KiB, ~15 MiB for 7,100 repositories, and a tuple of them kept
    # the mark's Python arenas through the plan, which does not read them).
    kept: pa.Table = field(repr=False, compare=False)
    removed_tags: dict[str, dict[str, str]]  # repo -> {tag: reason}
    unsafe_repos: dict[str, str]  # repo -> why it is kept whole
    # The reference graph of the marked snapshot, so that make_plan need not build it again;
    # what follows are places in it.
    graph: Graph = field(repr=False, compare=False)
    live_at: np.ndarray = field(repr=False, compare=False)  # per place: a live blob
    reach_at: RepoPlaces = field(repr=False, compare=False)  # repo -> closure of its roots
    manifests_at: RepoPlaces = field(repr=False, compare=False)  # repo -> manifests it keeps
    missing: list[MissingBlob] = field(default_factory=list)
    uncertain: list[str] = field(default_factory=list)  # reasons no blob may be swept

    @cached_property
    def kept_tags(self) -> dict[str, tuple[str, ...]]:
        """Repository -> the tags it keeps, sorted (built when asked)."""
        out: dict[str, list[str]] = defaultdict(list)
        for repo, tag in zip(
            pylist(self.kept["repository"]), pylist(self.kept["tag"]), strict=True
        ):
            out[repo].append(tag)
        return {repo: tuple(sorted(out[repo])) for repo in sorted(out)}

    # As digests, for the audit, the quarantine and retention's preview (built when asked).
    @cached_property
    def live_blobs(self) -> set[str]:
        return set(self.graph.digests_at(np.flatnonzero(self.live_at)).to_pylist())

    @cached_property
    def live_manifests(self) -> dict[str, set[str]]:
        return self.manifests_at.digests(self.graph)

    @cached_property
    def reach(self) -> dict[str, set[str]]:
        return self.reach_at.digests(self.graph)

    def links_reached(self, links: pa.Table) -> np.ndarray:
        """Per row of ``links`` (``_layers`` links): a kept manifest of its repository needs
        the blob, by the link's path or content (its repository's closure holds either)."""
        places, repos = self.graph.column_places, links["repository"]
        reached = self.reach_at.rows_in(repos, places(links["digest"]))
        reached |= self.reach_at.rows_in(repos, places(links["target"]))
        return reached

    def links_needed(self, links: pa.Table) -> np.ndarray:
        """Per row of ``links`` (``_layers`` links: repository, digest, target): the link is
        needed, because its repository is kept whole or a kept manifest of it needs the blob
        (by the link's path or content). Asked for a slice of links at once, on places: a
        store can hold millions of links."""
        repos = links["repository"]
        needed = self.links_reached(links)
        if self.unsafe_repos:
            names = pa.array(sorted(self.unsafe_repos), pa.string())
            unsafe = by_value(repos, lambda v: pc.is_in(v, value_set=names))
            needed |= one_array(pc.fill_null(unsafe, False)).to_numpy(zero_copy_only=False)
        return needed


@dataclass
class RepoView:
    """One repository as the snapshot saw it (shared with retention)."""

    name: str
    valid: bool = True
    revisions: dict[str, str | None] = field(default_factory=dict)  # path digest -> target
    revision_blob: dict[str, bool] = field(default_factory=dict)
    tags: dict[str, str | None] = field(default_factory=dict)  # tag -> target (None: unreadable)
    # tag -> every digest its index names, for the tags whose current/link cannot be read:
    # only those need it (a set per tag of a store was ~250 bytes a tag).
    history: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def revision_digests(self) -> set[str]:
        """Every digest a revision link names, by path or by content."""
        out: set[str] = set()
        for d, target in self.revisions.items():
            out.add(d)
            if target is not None:
                out.add(target)
        return out


def repo_views(snap: Snapshot) -> dict[str, RepoView]:
    """Every repository of the snapshot with its revisions, tags and tag history, sorted by
    name. Its ``_layers`` links are not held per repository (a store can hold millions):
    ``_links_where`` reads the few that mark asks about."""
    repos = {name: RepoView(name, valid) for name, valid in _repository_names(snap).items()}
    rv = snap["revisions"]
    # One string per digest for every digest column read here: they share one dictionary
    # (share_digests), and a revision's digest is also its tags' and their history's.
    shared: dict[tuple[int, ...], list[Any]] = {}
    for name, d, target, present in zip(
        pylist(rv["repository"]),
        pylist(rv["digest"], shared),
        pylist(rv["target"], shared),
        pylist(rv["blob_present"]),
        strict=True,
    ):
        repo = repos[name]
        repo.revisions[d] = target
        repo.revision_blob[d] = bool(present)
    t = snap["tags"]
    unreadable: set[tuple[str, str]] = set()
    for name, tag, target in zip(
        pylist(t["repository"]), pylist(t["tag"]), pylist(t["digest"], shared), strict=True
    ):
        repos[name].tags[tag] = target
        if target is None:
            unreadable.add((name, tag))
    h = snap["tag_history"]
    if unreadable:
        for name, tag, d in zip(
            pylist(h["repository"]), pylist(h["tag"]), pylist(h["digest"], shared), strict=True
        ):
            if (name, tag) in unreadable:
                repos[name].history[tag].add(d)
    return dict(sorted(repos.items()))


def _repository_names(snap: Snapshot) -> dict[str, bool]:
    """Every repository a table of the snapshot names, and whether its name is valid (from
    the repositories table; a repository only a link names counts as valid)."""
    r = snap["repositories"]
    names = {
        name: bool(valid)
        for name, valid in zip(pylist(r["repository"]), pylist(r["valid_name"]), strict=True)
    }
    for table in ("revisions", "tags", "tag_history", "layer_links"):
        for name in pylist(pc.unique(snap[table]["repository"])):
            names.setdefault(name, True)
    return names


def _links_where(
    snap: Snapshot, keep: Callable[[pa.Table], Any]
) -> dict[str, list[tuple[str, str | None]]]:
    """(path digest, target) of the ``_layers`` links ``keep`` picks, by repository."""
    ll = snap["layer_links"]
    ll = ll.filter(keep(ll))
    out: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    for name, d, target in zip(
        pylist(ll["repository"]), pylist(ll["digest"]), pylist(ll["target"]), strict=True
    ):
        out[name].append((d, target))
    return out


@dataclass
class _Repo:
    """One repository as the mark reads it: its revisions and tags as places."""

    name: str
    valid: bool = True
    # Per revision link: the digest of its path, of its content (-1: unreadable), and whether
    # that blob is stored.
    rev_digest: np.ndarray = field(default_factory=lambda: NO_PLACES)
    rev_target: np.ndarray = field(default_factory=lambda: NO_PLACES)
    rev_present: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    # Its rows of the tags table, in row order, and their targets (-1: unreadable): arrays,
    # not a (name, place) tuple per tag, which were ~30 MiB of Python objects at 177k tags
    # whose arenas the few objects that outlive the mark then kept through the plan.
    tag_rows: np.ndarray = field(default_factory=lambda: NO_PLACES)
    tag_at: np.ndarray = field(default_factory=lambda: NO_PLACES)
    history: dict[str, np.ndarray] = field(default_factory=dict)  # of the unreadable tags

    def revisions(self) -> np.ndarray:
        """Every place a revision link names, by path or by content, sorted."""
        both = np.concatenate([self.rev_digest, self.rev_target])
        return np.unique(both[both >= 0])


def rows_by_repository(col: pa.ChunkedArray) -> dict[str, np.ndarray]:
    """The rows of each repository of the column ``col`` (repository names), in row order."""
    arr = one_array(col)
    if not pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_encode()
    codes = np.asarray(pc.fill_null(arr.indices, -1), np.int64)
    order = np.argsort(codes, kind="stable")
    names = arr.dictionary.to_pylist()
    out: dict[str, np.ndarray] = {}
    for rows in np.split(order, np.flatnonzero(np.diff(codes[order])) + 1):
        if len(rows) and codes[rows[0]] >= 0:
            out[names[codes[rows[0]]]] = rows
    return out


def _repositories(snap: Snapshot, graph: Graph) -> tuple[dict[str, _Repo], list[str]]:
    """Every repository of the snapshot, sorted by name, its digests as places (the columns'
    indices into the shared dictionary: no digest becomes a Python string); and the tags
    table's tag names, per row (a string per distinct name, shared)."""
    repos = {name: _Repo(name, valid) for name, valid in _repository_names(snap).items()}
    rv = snap["revisions"]
    digest, target = graph.column_places(rv["digest"]), graph.column_places(rv["target"])
    present = one_array(pc.fill_null(rv["blob_present"], False)).to_numpy(zero_copy_only=False)
    for name, rows in rows_by_repository(rv["repository"]).items():
        repo = repos[name]
        repo.rev_digest, repo.rev_target, repo.rev_present = (
            digest[rows],
            target[rows],
            present[rows],
        )
    t = snap["tags"]
    tag_names, tag_at = pylist(t["tag"]), graph.column_places(t["digest"])
    unreadable: set[tuple[str, str]] = set()
    for name, rows in rows_by_repository(t["repository"]).items():
        repo = repos[name]
        repo.tag_rows, repo.tag_at = rows, tag_at[rows]
        unreadable.update((name, tag_names[r]) for r in rows[repo.tag_at < 0].tolist())
    h = snap["tag_history"]
    if unreadable:
        history: dict[tuple[str, str], list[int]] = defaultdict(list)
        for name, tag, d in zip(
            pylist(h["repository"]),
            pylist(h["tag"]),
            graph.column_places(h["digest"]).tolist(),
            strict=True,
        ):
            if (name, tag) in unreadable and d >= 0:
                history[(name, tag)].append(d)
        for (name, tag), at in history.items():
            repos[name].history[tag] = np.array(at, np.int64)
    return dict(sorted(repos.items())), tag_names


@heap_trimmed
@collector_paused
def mark(
    snap: Snapshot,
    *,
    delete_untagged: bool = False,
    expired_tags: set[tuple[str, str]] | None = None,
    extra_roots: dict[str, set[str]] | None = None,
    graph: Graph | None = None,
) -> MarkResult:
    """Mark from the roots described in the module docstring.

    Retention plugs in here: ``expired_tags`` ((repo, tag) pairs a policy removes) are not
    roots, and ``extra_roots`` (repo -> manifest digests, e.g. untagged manifests a policy
    keeps) are. Both only make sense with ``delete_untagged``; in a repository kept whole
    (fail closed) expired tags are kept too. ``graph`` is ``Graph.from_snapshot(snap)`` when
    the caller already has it; the result carries it on to ``make_plan``.

    Digests are places in ``graph.named`` throughout (see ``Graph``): a store of many
    manifests has hundreds of thousands of digests in its closures.
    """
    expired = expired_tags or set()
    if graph is None:
        graph = Graph.from_snapshot(snap)
    repos, tag_names = _repositories(snap, graph)
    unsafe: dict[str, str] = {}
    uncertain: list[str] = []
    problem = graph.problem
    named = graph.named
    digest = graph.digest_at

    # Per place: the manifest there has a problem (few do; asked for every revision and tag).
    bad = (graph.sizes >= 0) & (graph.kind_at < 0)
    bad[np.fromiter(graph.problem_at, np.int64, len(graph.problem_at))] = True

    revisions = {name: repo.revisions() for name, repo in repos.items()}
    unresolved = _links_where(snap, lambda ll: pc.is_null(ll["target"]))
    # Fail-closed checks that do not depend on the roots.
    for repo in repos.values():
        if not repo.valid:
            unsafe[repo.name] = "invalid repository name (Distribution ignores it; kept whole)"
            continue
        if bad[revisions[repo.name]].any():
            for d, target in zip(repo.rev_digest.tolist(), repo.rev_target.tolist(), strict=True):
                for x in dict.fromkeys((d, target)):
                    if x >= 0 and (p := problem(x)) is not None:
                        unsafe[repo.name] = f"manifest {digest(x)}: {p}"
        targets = repo.tag_at
        suspect = targets < 0  # unreadable, or pointing at a manifest with a problem
        suspect[~suspect] = bad[targets[~suspect]]
        for i in np.flatnonzero(suspect).tolist():
            tag, target = tag_names[repo.tag_rows[i]], int(targets[i])
            if target < 0 and not len(repo.history.get(tag, NO_PLACES)):
                # Its history would name what it may point to; without one, it could be any
                # manifest of the repository.
                unsafe[repo.name] = f"tag {tag}: current/link cannot be read and has no history"
            elif target >= 0:
                unsafe[repo.name] = f"manifest {digest(target)} of tag {tag}: {problem(target)}"
        for d, _ in unresolved.get(repo.name, ()):
            # We cannot tell which blob this link protects: no blob may be swept.
            uncertain.append(f"{repo.name}: _layers link {d} cannot be resolved")

    live: dict[str, np.ndarray] = {}  # repo -> closure (places, sorted; aliases canonicalised)
    roots: dict[str, list[np.ndarray]] = defaultdict(list)
    kept = np.zeros(len(tag_names), bool)  # per row of the tags table: the tag is kept
    removed_tags: dict[str, dict[str, str]] = defaultdict(dict)

    pending_referrer_tags: dict[str, dict[str, str]] = defaultdict(dict)  # repo -> tag -> subject
    for repo in repos.values():
        revs = revisions[repo.name]
        whole = repo.name in unsafe or not delete_untagged
        if whole:
            roots[repo.name].append(revs)
        # Per tag, as arrays over the repository's tag rows (a Python object per tag here was
        # most of the mark's Python heap).
        rows, targets = repo.tag_rows, repo.tag_at
        unreadable = targets < 0
        for r in rows[unreadable].tolist():
            # Unreadable current/link: every digest this tag ever pointed to is a root.
            roots[repo.name].append(repo.history.get(tag_names[r], NO_PLACES))
        kept[rows[unreadable]] = True
        # A tag is dangling unless its target is a revision of the repository whose blob is
        # stored.
        dangling = ~unreadable & ~np.isin(targets, repo.rev_digest[repo.rev_present])
        if repo.name in unsafe:
            kept[rows[dangling]] = True
        else:
            for r in rows[dangling].tolist():
                removed_tags[repo.name][tag_names[r]] = "dangling-tag"
        rooted = ~unreadable & ~dangling
        if expired and repo.name not in unsafe:  # the caller plans their removal
            rooted &= [(repo.name, tag_names[r]) not in expired for r in rows.tolist()]
        if delete_untagged and not whole:
            for i in np.flatnonzero(rooted).tolist():
                tag = tag_names[rows[i]]
                if (subject := referrer_tag_subject(tag)) is not None:
                    pending_referrer_tags[repo.name][tag] = subject
                    rooted[i] = False
        kept[rows[rooted]] = True
        roots[repo.name].append(targets[rooted])

    if extra_roots:
        wanted = [(name, d) for name, digests in extra_roots.items() for d in digests]
        for (name, _), at in zip(wanted, graph.places_of(d for _, d in wanted), strict=True):
            roots[name].append(np.array([at], np.int64))

    alive = np.zeros(len(named), bool)  # the union of every closure (closures only grow)

    def close(name: str) -> None:
        at = np.concatenate(roots[name]) if roots[name] else NO_PLACES
        live[name] = graph.reach(at, graph.alias_places(name))
        alive[live[name]] = True

    for name in repos:
        close(name)

    if delete_untagged:
        # Referrers live while their subject lives, in any repository (COSIGN_REPOSITORY can
        # put signatures elsewhere). Iterate: a signature of an attestation counts too.
        subject_of = dict(
            zip(
                graph.places_of(graph.subjects).tolist(),
                graph.places_of(graph.subjects.values()).tolist(),
                strict=True,
            )
        )
        subject_of.pop(-1, None)
        pending = sorted({s for tags in pending_referrer_tags.values() for s in tags.values()})
        subject_at = dict(zip(pending, graph.places_of(pending).tolist(), strict=True))
        changed = True
        while changed:
            changed = False
            everything = alive.copy()
            for repo in repos.values():
                if repo.name in unsafe:
                    continue
                add: list[int] = []
                for d in revisions[repo.name].tolist() if subject_of else ():
                    subj = subject_of.get(d, -1)
                    if subj >= 0 and everything[subj] and not has_place(live[repo.name], d):
                        add.append(d)
                waiting = pending_referrer_tags[repo.name]
                tag_row = (
                    {tag_names[r]: i for i, r in enumerate(repo.tag_rows.tolist())}
                    if waiting
                    else {}
                )
                for tag, subj_digest in list(waiting.items()):
                    at = subject_at[subj_digest]
                    if (at >= 0 and everything[at]) or (
                        subj_digest.startswith("sha512:")
                        and _any_starts_with(named, everything, subj_digest)
                    ):
                        i = tag_row[tag]
                        kept[repo.tag_rows[i]] = True
                        add.append(int(repo.tag_at[i]))
                        del waiting[tag]
                if add:
                    roots[repo.name].append(np.array(add, np.int64))
                    close(repo.name)
                    changed = True
        for name, tags in pending_referrer_tags.items():
            for tag in tags:
                removed_tags[name][tag] = "orphan-referrer-tag"

    # Closures may reach manifests with problems (e.g. an unparsable child): keep that repo
    # whole, then recompute its closure.
    with_problem = np.array(sorted(graph.problem_at), np.int64)
    for repo in repos.values():
        if repo.name in unsafe or not len(with_problem):
            continue
        hit = np.intersect1d(live[repo.name], with_problem, assume_unique=True)
        if len(hit):
            d = int(hit[0])
            unsafe[repo.name] = f"manifest {digest(d)}: {graph.problem_at[d]}"
            roots[repo.name].append(revisions[repo.name])
            kept[repo.tag_rows] = True
            removed_tags[repo.name] = {
                t: r for t, r in removed_tags[repo.name].items() if r == "dangling-tag"
            }
            close(repo.name)

    # The children a manifest needs that are not stored blobs (unless they are foreign layers
    # with urls): only these can be missing, so only these are checked per repository.
    absent = {m: gone for m, gone in graph.unstored_at.items() if m not in graph.problem_at}
    absent_at = np.array(sorted(absent), np.int64)

    live_at = np.zeros(len(named), bool)
    if unsafe:
        unsafe_names = pa.array(sorted(unsafe), pa.string())
        ll = snap["layer_links"]
        ll = ll.filter(by_value(ll["repository"], lambda v: pc.is_in(v, value_set=unsafe_names)))
        targets = graph.column_places(ll["target"])
        live_at[targets[targets >= 0]] = True
        paths = graph.column_places(ll["digest"])
        paths = paths[paths >= 0]
        live_at[paths[graph.sizes[paths] >= 0]] = True
        del ll, targets, paths
    manifests: dict[str, np.ndarray] = {}
    missing: list[MissingBlob] = []
    for repo in repos.values():
        closure = live[repo.name]
        live_at[closure[graph.sizes[closure] >= 0]] = True
        revs = revisions[repo.name]
        manifests[repo.name] = (
            revs if repo.name in unsafe else np.intersect1d(closure, revs, assume_unique=True)
        )
        for m in np.intersect1d(closure, absent_at, assume_unique=True).tolist():
            for at, child, kind in absent[m]:
                if not graph.stored(graph.canonical_at(repo.name, at)):
                    missing.append(MissingBlob(repo.name, digest(m), child, kind))

    t = snap["tags"]
    return MarkResult(
        kept=pa.table([t["repository"], t["tag"]], ["repository", "tag"]).filter(kept),
        removed_tags={k: v for k, v in removed_tags.items() if v},
        unsafe_repos=unsafe,
        graph=graph,
        live_at=live_at,
        reach_at=RepoPlaces(live),
        manifests_at=RepoPlaces(manifests),
        missing=sorted(set(missing), key=lambda m: (m.repository, m.manifest, m.blob)),
        uncertain=uncertain,
    )


def _any_starts_with(named: pa.Array, where: np.ndarray, prefix: str) -> bool:
    """Some digest at a place ``where`` holds starts with ``prefix`` (a sha512 subject that a
    tag can only name truncated). Digests held as their bytes are all sha256 (share_digests),
    so none of them is a sha512 digest."""
    if not pa.types.is_string(named.type):
        return False
    return bool(pc.any(pc.starts_with(named.filter(pa.array(where)), prefix)).as_py())
