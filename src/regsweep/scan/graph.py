"""The reference graph of a Snapshot: manifests -> (config, layers, child manifests, blobs).

Shared by gc's mark phase and the usage reports, so both agree on what an image needs.
Children are followed wherever their manifest was read, in any repository (a superset of
Distribution's same-repository recursion, which keeps more, never less).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from regsweep.scan.snapshot import Snapshot, column


@dataclass
class Graph:
    blob_sizes: dict[str, int]
    edges: dict[str, list[tuple[str, str]]]  # parent -> [(child, kind)], strong edges only
    subjects: dict[str, str]  # referrer -> subject digest (weak edge)
    manifest_kind: dict[str, str]
    manifest_problem: dict[str, str]
    aliases: dict[str, dict[str, str]] = field(default_factory=dict)  # repo -> {alias: canonical}
    url_refs: set[tuple[str, str]] = field(default_factory=set)  # (parent, child) with urls

    def has_urls(self, parent: str, child: str) -> bool:
        """A foreign or non-distributable layer: it may legitimately be absent."""
        return (parent, child) in self.url_refs

    @classmethod
    def from_snapshot(cls, snap: Snapshot) -> Graph:
        blobs = snap["blobs"]
        sizes = dict(zip(column(blobs, "digest"), column(blobs, "size"), strict=True))
        edges: dict[str, list[tuple[str, str]]] = defaultdict(list)
        subjects: dict[str, str] = {}
        refs = snap["references"]
        url_refs: set[tuple[str, str]] = set()
        for parent, child, kind, urls in zip(
            column(refs, "parent"),
            column(refs, "child"),
            column(refs, "kind"),
            column(refs, "has_urls"),
            strict=True,
        ):
            if urls:
                url_refs.add((parent, child))
            if kind == "subject":
                subjects[parent] = child
            else:
                edges[parent].append((child, kind))
        m = snap["manifests"]
        kinds = dict(zip(column(m, "digest"), column(m, "kind"), strict=True))
        problems = {
            d: p
            for d, p in zip(column(m, "digest"), column(m, "problem"), strict=True)
            if p is not None
        }
        aliases: dict[str, dict[str, str]] = defaultdict(dict)
        ll = snap["layer_links"]
        for repo, digest, target in zip(
            column(ll, "repository"), column(ll, "digest"), column(ll, "target"), strict=True
        ):
            if target is not None and digest != target:
                aliases[repo][digest] = target
        return cls(sizes, dict(edges), subjects, kinds, problems, dict(aliases), url_refs)

    def canonical(self, repo: str | None, digest: str) -> str:
        """The stored blob for ``digest``: itself, or the target of the repository's alias link
        (a ``sha512:`` layer reference is stored under its sha256, storage-layout.md §7.10)."""
        if digest in self.blob_sizes or repo is None:
            return digest
        return self.aliases.get(repo, {}).get(digest, digest)

    def closure(self, repo: str | None, roots: Iterable[str]) -> set[str]:
        """Every digest reachable from ``roots`` over strong edges, roots included, with alias
        digests replaced by their canonical blobs (the alias digest itself is kept too)."""
        seen: set[str] = set()
        stack = list(roots)
        while stack:
            d = stack.pop()
            if d in seen:
                continue
            seen.add(d)
            canon = self.canonical(repo, d)
            if canon != d and canon not in seen:
                stack.append(canon)
            for child, _ in self.edges.get(d, ()):
                if child not in seen:
                    stack.append(child)
        return seen
