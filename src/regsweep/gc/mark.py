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

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from regsweep.python_gc import collector_paused
from regsweep.scan.graph import Graph, pylist
from regsweep.scan.snapshot import Snapshot, by_value

# cosign: [prefix]sha256-<hex>.sig|.att|.sbom ; OCI referrers fallback: sha256-<hex>
REFERRER_TAG = re.compile(
    r"^(?P<prefix>.*?)(?P<alg>sha256|sha512)-(?P<hex>[a-f0-9]{64})(?:\.(?P<suffix>sig|att|sbom))?$"
)


def referrer_tag_subject(tag: str) -> str | None:
    """The subject digest a cosign or referrers-fallback tag names, or None for other tags.
    (A sha512 subject is truncated to 64 hex characters in the tag; we return the prefix form.)"""
    m = REFERRER_TAG.match(tag)
    return f"{m['alg']}:{m['hex']}" if m else None


_NOTHING: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class MissingBlob:
    repository: str
    manifest: str
    blob: str
    kind: str  # config | layer | blob


@dataclass
class MarkResult:
    live_blobs: set[str]
    live_manifests: dict[str, set[str]]  # repo -> manifest digests kept in that repo
    kept_tags: dict[str, set[str]]
    removed_tags: dict[str, dict[str, str]]  # repo -> {tag: reason}
    unsafe_repos: dict[str, str]  # repo -> why it is kept whole
    reach: dict[str, set[str]] = field(default_factory=dict)  # repo -> closure of its roots
    missing: list[MissingBlob] = field(default_factory=list)
    uncertain: list[str] = field(default_factory=list)  # reasons no blob may be swept
    # The reference graph of the marked snapshot, so that make_plan need not build it again.
    graph: Graph | None = field(default=None, repr=False, compare=False)

    def needs_link(self, repo: str, digest: str, target: str | None) -> bool:
        """A ``_layers`` link of ``repo`` (its path's digest, its content's) is needed: its
        repository is kept whole, or a kept manifest of it needs the blob. Asked per link
        rather than stored as sets: a store can hold millions of links."""
        if repo in self.unsafe_repos:
            return True
        reach = self.reach.get(repo, _NOTHING)
        return digest in reach or (target is not None and target in reach)


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
    repos: dict[str, RepoView] = {}

    def get(name: str) -> RepoView:
        if name not in repos:
            repos[name] = RepoView(name)
        return repos[name]

    r = snap["repositories"]
    for name, valid in zip(pylist(r["repository"]), pylist(r["valid_name"]), strict=True):
        get(name).valid = bool(valid)
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
        repo = repos.get(name) or get(name)
        repo.revisions[d] = target
        repo.revision_blob[d] = bool(present)
    t = snap["tags"]
    unreadable: set[tuple[str, str]] = set()
    for name, tag, target in zip(
        pylist(t["repository"]), pylist(t["tag"]), pylist(t["digest"], shared), strict=True
    ):
        (repos.get(name) or get(name)).tags[tag] = target
        if target is None:
            unreadable.add((name, tag))
    h = snap["tag_history"]
    if unreadable:
        for name, tag, d in zip(
            pylist(h["repository"]), pylist(h["tag"]), pylist(h["digest"], shared), strict=True
        ):
            if (name, tag) in unreadable:
                repos[name].history[tag].add(d)
    for table in (h, snap["layer_links"]):
        for name in pylist(pc.unique(table["repository"])):
            get(name)
    return dict(sorted(repos.items()))


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
    """
    expired = expired_tags or set()
    if graph is None:
        graph = Graph.from_snapshot(snap)
    repos = repo_views(snap)
    unsafe: dict[str, str] = {}
    uncertain: list[str] = []

    def manifest_problem(d: str) -> str | None:
        if d in graph.blob_sizes and d not in graph.manifest_kind:
            return "manifest blob was not read"
        return graph.manifest_problem.get(d)

    revision_digests = {name: repo.revision_digests() for name, repo in repos.items()}
    unresolved = _links_where(snap, lambda ll: pc.is_null(ll["target"]))
    # Fail-closed checks that do not depend on the roots.
    for repo in repos.values():
        if not repo.valid:
            unsafe[repo.name] = "invalid repository name (Distribution ignores it; kept whole)"
            continue
        # (Asked per digest: a set of every digest with a problem held every stored layer and
        # config, none of which is a manifest that was read.)
        if any(manifest_problem(x) is not None for x in revision_digests[repo.name]):
            for d, target in repo.revisions.items():
                for x in {d, target} - {None}:
                    assert x is not None
                    p = manifest_problem(x)
                    if p is not None:
                        unsafe[repo.name] = f"manifest {x}: {p}"
        for tag, target in repo.tags.items():
            if target is None and not repo.history.get(tag):
                # Its history would name what it may point to; without one, it could be any
                # manifest of the repository.
                unsafe[repo.name] = f"tag {tag}: current/link cannot be read and has no history"
            elif target is not None and (p := manifest_problem(target)) is not None:
                unsafe[repo.name] = f"manifest {target} of tag {tag}: {p}"
        for d, _ in unresolved.get(repo.name, ()):
            # We cannot tell which blob this link protects: no blob may be swept.
            uncertain.append(f"{repo.name}: _layers link {d} cannot be resolved")

    live: dict[str, set[str]] = {}  # repo -> closure (digests, canonicalised)
    roots: dict[str, set[str]] = defaultdict(set)
    kept_tags: dict[str, set[str]] = defaultdict(set)
    removed_tags: dict[str, dict[str, str]] = defaultdict(dict)

    pending_referrer_tags: dict[str, dict[str, str]] = defaultdict(dict)  # repo -> tag -> subject
    for repo in repos.values():
        revs = revision_digests[repo.name]
        whole = repo.name in unsafe or not delete_untagged
        if whole:
            roots[repo.name] |= revs
        for tag, target in repo.tags.items():
            if target is None:
                # Unreadable current/link: every digest this tag ever pointed to is a root.
                roots[repo.name] |= repo.history.get(tag, set())
                kept_tags[repo.name].add(tag)
                continue
            if target not in revs or not repo.revision_blob.get(target, False):
                if repo.name in unsafe:
                    kept_tags[repo.name].add(tag)
                else:
                    removed_tags[repo.name][tag] = "dangling-tag"
                continue
            if (repo.name, tag) in expired and repo.name not in unsafe:
                continue  # the caller plans its removal
            subject = referrer_tag_subject(tag)
            if delete_untagged and not whole and subject is not None:
                pending_referrer_tags[repo.name][tag] = subject
                continue
            kept_tags[repo.name].add(tag)
            roots[repo.name].add(target)

    for name, digests in (extra_roots or {}).items():
        roots[name] |= digests

    def close(name: str) -> None:
        live[name] = graph.closure(name, roots[name])

    for name in repos:
        close(name)

    if delete_untagged:
        # Referrers live while their subject lives, in any repository (COSIGN_REPOSITORY can
        # put signatures elsewhere). Iterate: a signature of an attestation counts too.
        changed = True
        while changed:
            changed = False
            everything = set().union(*live.values()) if live else set()
            for repo in repos.values():
                if repo.name in unsafe:
                    continue
                add: set[str] = set()
                for d in revision_digests[repo.name] if graph.subjects else ():
                    subj = graph.subjects.get(d)
                    if subj is not None and subj in everything and d not in live[repo.name]:
                        add.add(d)
                for tag, subj in list(pending_referrer_tags[repo.name].items()):
                    target = repo.tags[tag]
                    assert target is not None
                    if subj in everything or (
                        subj.startswith("sha512:") and any(x.startswith(subj) for x in everything)
                    ):
                        kept_tags[repo.name].add(tag)
                        add.add(target)
                        del pending_referrer_tags[repo.name][tag]
                if add:
                    roots[repo.name] |= add
                    close(repo.name)
                    changed = True
        for name, tags in pending_referrer_tags.items():
            for tag in tags:
                removed_tags[name][tag] = "orphan-referrer-tag"

    # Closures may reach manifests with problems (e.g. an unparsable child): keep that repo
    # whole, then recompute its closure.
    for repo in repos.values():
        if repo.name in unsafe or live[repo.name].isdisjoint(graph.manifest_problem):
            continue
        for d in live[repo.name]:
            p = graph.manifest_problem.get(d)
            if p is not None:
                unsafe[repo.name] = f"manifest {d}: {p}"
                roots[repo.name] |= revision_digests[repo.name]
                kept_tags[repo.name] |= set(repo.tags)
                removed_tags[repo.name] = {
                    t: r for t, r in removed_tags[repo.name].items() if r == "dangling-tag"
                }
                close(repo.name)
                break

    # The children a manifest needs that are not stored blobs (unless they are foreign layers
    # with urls): only these can be missing, so only these are checked per repository.
    absent = {m: gone for m, gone in graph.unstored.items() if m not in graph.manifest_problem}

    unsafe_names = pa.array(sorted(unsafe), pa.string())
    unsafe_links = (
        _links_where(
            snap,
            lambda ll: by_value(ll["repository"], lambda v: pc.is_in(v, value_set=unsafe_names)),
        )
        if unsafe
        else {}
    )
    live_blobs: set[str] = set()
    live_manifests: dict[str, set[str]] = {}
    missing: list[MissingBlob] = []
    for repo in repos.values():
        closure = live[repo.name]
        revs = revision_digests[repo.name]
        live_blobs |= closure & graph.blob_sizes.keys()
        live_manifests[repo.name] = closure & revs
        if repo.name in unsafe:
            links = unsafe_links.get(repo.name, [])
            live_blobs |= {t for _, t in links if t is not None}
            live_blobs |= {d for d, _ in links if d in graph.blob_sizes}
            live_manifests[repo.name] = set(revs)
        for m in filter(absent.__contains__, closure) if absent else ():
            for child, kind in absent[m]:
                if graph.canonical(repo.name, child) not in graph.blob_sizes:
                    missing.append(MissingBlob(repo.name, m, child, kind))

    return MarkResult(
        live_blobs=live_blobs,
        live_manifests=live_manifests,
        kept_tags=dict(kept_tags),
        removed_tags={k: v for k, v in removed_tags.items() if v},
        unsafe_repos=unsafe,
        reach=live,
        missing=sorted(set(missing), key=lambda m: (m.repository, m.manifest, m.blob)),
        uncertain=uncertain,
        graph=graph,
    )
