"""What retention may decide about in each repository (retention-policy.md §6.1 rule 4, §6.3
step 2): tags, and top-level untagged manifests. Never index children, never referrers (a
manifest with ``subject``), never cosign/referrers-fallback tags: those follow their subject
or parent through the mark phase.

Also finds the repositories that must be skipped because something in them cannot be read
(``on_read_error: skip_repo``): the same fail-closed test the mark phase applies.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from regsweep.gc.mark import RepoView, referrer_tag_subject
from regsweep.scan.graph import Graph


@dataclass(frozen=True, slots=True)
class Candidate:
    """A tag (``kind="tag"``), an artifact (``kind="artifact"``, a digest with all its
    candidate tags) or a top-level untagged manifest (``kind="untagged"``)."""

    repo: str
    kind: str
    digest: str
    tags: tuple[str, ...]
    media: str  # image | index | artifact

    @property
    def tagged(self) -> bool:
        return bool(self.tags)

    @property
    def name(self) -> str:
        """The name ties are broken by (after the rank key): the tag, the first tag of an
        artifact, "" for an untagged manifest."""
        return self.tags[0] if self.tags else ""

    def sort_key(self) -> tuple[str, str, str]:
        return (self.repo, self.name, self.digest)


class Manifests:
    """What retention asks the graph about the manifests the repositories' links name, by
    digest: a dict of those digests' places, and the graph's arrays. The graph's string views
    (a dict of every named digest, the stored blobs' sizes, every manifest's children) were
    ~90 MiB of a policy's evaluation at 1M objects."""

    def __init__(self, graph: Graph, views: Iterable[RepoView]) -> None:
        named = {
            d
            for repo in views
            for d in itertools.chain(repo.revisions, repo.revisions.values(), repo.tags.values())
            if d is not None
        }
        self.graph = graph
        self.subjects = graph.subjects
        self._place: dict[str, int] = dict(zip(named, graph.places_of(named).tolist(), strict=True))

    def place(self, digest: str) -> int:
        return self._place.get(digest, -1)

    def problem(self, digest: str) -> str | None:
        """Why the manifest ``digest`` cannot be used (a stored blob not read as a manifest
        too), or None."""
        return self.graph.problem(self.place(digest))

    def kind(self, digest: str) -> str | None:
        at = self.place(digest)
        k = int(self.graph.kind_at[at]) if at >= 0 else -1
        return self.graph.kind_names[k] if k >= 0 else None

    def children(self, digests: Iterable[str]) -> set[int]:
        """The places of the manifests that ``digests`` list as manifest children."""
        starts, children = self.graph.manifest_children_at
        out: set[int] = set()
        for at in (self.place(d) for d in digests):
            if at >= 0:
                out.update(children[starts[at] : starts[at + 1]].tolist())
        return out

    def first_problem(self, repo: str, roots: Iterable[str]) -> tuple[str, str] | None:
        """(digest, problem) of the first manifest, in digest order, that ``roots`` reach
        (themselves included) and that has a problem."""
        g = self.graph
        reached = g.reach(np.array([self.place(d) for d in roots], np.int64), g.alias_places(repo))
        for at in reached.tolist():  # sorted places: in digest order
            if (p := g.problem_at.get(at)) is not None:
                return g.digest_at(at), p
        return None


def read_problem(repo: RepoView, manifests: Manifests) -> str | None:
    """Why ``repo`` cannot be judged safely, or None. Mirrors the mark phase's fail-closed
    tests: an invalid name, an unresolvable link, a manifest (or anything a manifest reaches)
    that was not read or not understood."""
    if not repo.valid:
        return "invalid repository name"
    for tag, d in sorted(repo.tags.items()):
        if d is None:
            return f"tag {tag}: current/link cannot be read"
        if (p := manifests.problem(d)) is not None:
            return f"manifest {d} of tag {tag}: {p}"
    for d, target in sorted(repo.revisions.items()):
        if target is None:
            return f"revision link {d} cannot be resolved"
        for x in (d, target):
            if (p := manifests.problem(x)) is not None:
                return f"manifest {x}: {p}"
    found = manifests.first_problem(repo.name, repo.revision_digests())
    return f"manifest {found[0]}: {found[1]}" if found is not None else None


def media_of(digest: str, manifests: Manifests, artifact_types: dict[str, str | None]) -> str:
    kind = manifests.kind(digest)
    if kind == "index":
        return "index"
    if kind == "artifact" or artifact_types.get(digest):
        return "artifact"
    return "image"


@dataclass
class RepoCandidates:
    tags: list[Candidate]  # one per tag (unit tag) or per tagged digest (unit artifact)
    untagged: list[Candidate]
    excluded_tags: dict[str, str]  # tag -> why it is not a candidate
    referrers: set[str]  # manifests with a subject in this repository (for keep-orphans)
    cosign_targets: set[str]  # what legacy referrer tags point to


def candidates(
    repo: RepoView,
    manifests: Manifests,
    artifact_types: dict[str, str | None],
    *,
    unit: str,
    legacy_cosign_tags: str,
) -> RepoCandidates:
    """The candidates of one repository, sorted by name then digest."""
    present = {
        t for d, t in repo.revisions.items() if t is not None and repo.revision_blob.get(d, False)
    }
    excluded: dict[str, str] = {}
    cosign_targets: set[str] = set()
    by_digest: dict[str, list[str]] = defaultdict(list)
    for tag, d in sorted(repo.tags.items()):
        if d is None or d not in present:
            excluded[tag] = "dangling or unreadable tag (the mark phase decides)"
            continue
        if legacy_cosign_tags == "referrer" and referrer_tag_subject(tag) is not None:
            excluded[tag] = "cosign/referrers-fallback tag: follows its subject"
            cosign_targets.add(d)
            continue
        if d in manifests.subjects:
            excluded[tag] = "points to a referrer (manifest with subject): follows its subject"
            continue
        by_digest[d].append(tag)

    tag_cands: list[Candidate] = []
    for d, tags in by_digest.items():
        media = media_of(d, manifests, artifact_types)
        if unit == "artifact":
            tag_cands.append(Candidate(repo.name, "artifact", d, tuple(sorted(tags)), media))
        else:
            tag_cands += [Candidate(repo.name, "tag", d, (t,), media) for t in tags]
    tag_cands.sort(key=Candidate.sort_key)

    tagged_digests = {d for d in repo.tags.values() if d is not None}
    children = manifests.children(repo.revision_digests())
    referrers = {d for d in present if d in manifests.subjects}
    untagged = [
        Candidate(repo.name, "untagged", d, (), media_of(d, manifests, artifact_types))
        for d in sorted(present)
        if d not in tagged_digests and manifests.place(d) not in children and d not in referrers
    ]
    return RepoCandidates(tag_cands, untagged, excluded, referrers, cosign_targets)
