"""The reference graph of a Snapshot: manifests -> (config, layers, child manifests, blobs).

Shared by gc's mark phase and the usage reports, so both agree on what an image needs.
Children are followed wherever their manifest was read, in any repository (a superset of
Distribution's same-repository recursion, which keeps more, never less).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from regsweep.scan.snapshot import (
    DIGEST_COLUMNS,
    Snapshot,
    ascending,
    by_value,
    decoded,
    identity,
    one_array,
)


@dataclass
class Graph:
    # The sizes of the stored blobs that something in the snapshot names (a reference, a
    # manifest, a link or a tag): the only blobs the mark and the reports look up one by one.
    # A blob nothing names stays in Arrow, since a store can hold millions of them.
    blob_sizes: dict[str, int]
    # parent -> its children over strong edges, in the order the manifest lists them. A tuple
    # per parent rather than a (child, kind) pair per edge: the pairs and their lists were a
    # third of the graph (hundreds of thousands of edges in a store of many manifests).
    edges: dict[str, tuple[str, ...]]
    manifest_children: dict[str, tuple[str, ...]]  # parent -> the children it lists as manifests
    subjects: dict[str, str]  # referrer -> subject digest (weak edge)
    manifest_kind: dict[str, str]
    manifest_problem: dict[str, str]
    aliases: dict[str, dict[str, str]] = field(default_factory=dict)  # repo -> {alias: canonical}
    url_refs: set[tuple[str, str]] = field(default_factory=set)  # (parent, child) with urls
    # parent -> [(child, kind)]: the strong edges to a config, layer or blob that is not
    # stored and has no urls (index children may legitimately be absent, §3.3). Only these can
    # be missing blobs; found in Arrow, as nearly every child is stored.
    unstored: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    stored_blobs: int = 0  # every stored blob, named or not
    stored_bytes: int = 0

    def has_urls(self, parent: str, child: str) -> bool:
        """A foreign or non-distributable layer: it may legitimately be absent."""
        return (parent, child) in self.url_refs

    @classmethod
    def from_snapshot(cls, snap: Snapshot) -> Graph:
        # Column by column, the rare rows (subjects, urls, alias links) picked out in Arrow
        # first: this runs on every gc plan, over every reference and link of the store.
        # Only the blobs something names are held (as their places in ``named``: a filtered
        # dictionary column would keep every digest of its part), counting the rest a part at
        # a time.
        named = named_digests(snap)
        # Every digest as one Python string, whichever table and column it is read from: the
        # graph holds each digest in several places (a blob's size, a manifest's kind, the
        # edges to and from it), and each column's own conversion would make its own copies.
        names = named.to_pylist()

        def where_named(col: pa.ChunkedArray) -> pa.ChunkedArray:
            at = places(col, named)
            if at.null_count != col.null_count:  # named_digests covers every column read here
                raise AssertionError("a digest missing from named_digests would be lost")
            return at

        def digests(col: pa.ChunkedArray, at: pa.ChunkedArray | None = None) -> list[Any]:
            return [
                None if i is None else names[i]
                for i in pylist(where_named(col) if at is None else at)
            ]

        count = total = 0
        # The stored blobs something names, as their places in ``named``, and their sizes.
        found_at: list[pa.Array] = [pa.array([], pa.int32())]
        place_sizes: list[pa.Array] = [pa.array([], pa.int64())]
        for part in snap.parts("blobs", ("digest", "size")):
            count += part.num_rows
            total += int(pc.sum(part["size"]).as_py() or 0)
            where = places(part["digest"], named)
            stored_here = pc.is_valid(where)
            found_at += where.filter(stored_here).chunks
            place_sizes += part["size"].filter(stored_here).chunks
            del part, where, stored_here
        stored = (count, total)
        found = pa.chunked_array(found_at, pa.int32())
        sizes = dict(
            zip(
                (names[i] for i in pylist(found)),
                pylist(pa.chunked_array(place_sizes, pa.int64())),
                strict=True,
            )
        )
        del found_at, place_sizes
        refs = snap["references"]
        is_subject = kind_is(refs, "subject")
        subj = refs.filter(is_subject)
        subjects = dict(zip(digests(subj["parent"]), digests(subj["child"]), strict=True))
        with_urls = refs.filter(pc.fill_null(refs["has_urls"], False))
        url_refs = set(zip(digests(with_urls["parent"]), digests(with_urls["child"]), strict=True))
        if subj.num_rows:
            refs = refs.filter(pc.invert(is_subject))
        # Each child's place, once: for its name in the edges, and whether it is stored.
        child_at = where_named(refs["child"])
        is_stored = np.zeros(len(named) + 1, bool)  # the last place: a null child
        is_stored[found.to_numpy()] = True
        stored_child = is_stored[pc.fill_null(child_at, len(named)).to_numpy()]
        unstored = _unstored(refs, pa.array(stored_child), url_refs)
        edges = _runs(where_named(refs["parent"]), digests(refs["child"], child_at), names)
        del child_at, stored_child
        manifest_refs = refs.filter(kind_is(refs, "manifest"))
        manifest_children = _runs(
            where_named(manifest_refs["parent"]), digests(manifest_refs["child"]), names
        )
        del manifest_refs
        m = snap["manifests"]
        manifests = digests(m["digest"])
        kinds = dict(zip(manifests, pylist(m["kind"]), strict=True))
        problems = {
            d: p for d, p in zip(manifests, pylist(m["problem"]), strict=True) if p is not None
        }
        aliases: dict[str, dict[str, str]] = defaultdict(dict)
        for ll in _alias_links(snap["layer_links"]):
            for repo, digest, target in zip(
                pylist(ll["repository"]), digests(ll["digest"]), digests(ll["target"]), strict=True
            ):
                aliases[repo][digest] = target
        return cls(
            sizes,
            edges,
            manifest_children,
            subjects,
            kinds,
            problems,
            dict(aliases),
            url_refs,
            unstored,
            *stored,
        )

    def canonical(self, repo: str | None, digest: str) -> str:
        """The stored blob for ``digest``: itself, or the target of the repository's alias link
        (a ``sha512:`` layer reference is stored under its sha256, storage-layout.md §7.10)."""
        if digest in self.blob_sizes or repo is None:
            return digest
        return self.aliases.get(repo, {}).get(digest, digest)

    def closure(self, repo: str | None, roots: Iterable[str]) -> set[str]:
        """Every digest reachable from ``roots`` over strong edges, roots included, with alias
        digests replaced by their canonical blobs (the alias digest itself is kept too)."""
        # Level by level with set operations: only parents and aliases cost a Python step.
        aliases = self.aliases.get(repo, {}) if repo is not None else {}
        edges = self.edges
        sizes = self.blob_sizes
        seen = set(roots)
        frontier = set(seen)
        while frontier:
            new: set[str] = set()
            for d in filter(edges.__contains__, frontier):
                new.update(edges[d])
            if aliases:
                for d in filter(aliases.__contains__, frontier):
                    if d not in sizes:
                        new.add(aliases[d])
            frontier = new - seen
            seen |= frontier
        return seen


def pylist(
    col: pa.ChunkedArray | pa.Array, shared: dict[tuple[int, ...], list[Any]] | None = None
) -> list[Any]:
    """A column as Python values. A dictionary column converts each distinct value once and
    every row shares that string object: much cheaper than decoding row by row, and hashing a
    shared string is cached (digests are looked up in sets and dicts over and over).

    ``shared`` (the same dict for several columns) lets columns that share a dictionary share
    its strings too: a link's digest and target columns share one (scanner._take), and
    converting each on its own held every digest twice."""
    if isinstance(col, pa.ChunkedArray):
        if col.num_chunks != 1:
            # Chunk by chunk: combining chunks that have their own dictionaries would copy
            # every dictionary (the blobs' digests come in sixteen chunks).
            return [v for chunk in col.chunks for v in pylist(chunk, shared)]
        col = col.chunk(0)
    if not pa.types.is_dictionary(col.type):
        return col.to_pylist()  # type: ignore[no-any-return]
    if shared is not None:
        # The values the rows use, each converted once for every column given ``shared``
        # (a digest column's dictionary is every digest of the snapshot, see share_digests).
        if (vals := shared.get(same := identity(col.dictionary))) is None:
            vals = shared[same] = [None] * len(col.dictionary)
        used = pc.unique(col.indices).drop_null().to_numpy()
        new = [int(i) for i in used if vals[i] is None]
        if new:
            picked = col.dictionary.take(pa.array(new, pa.int32())).to_pylist()
            for i, v in zip(new, picked, strict=True):
                vals[i] = v
    elif len(col.dictionary) > len(col):
        # A filtered column keeps its whole dictionary (say, every blob of the store):
        # decoding the rows is cheaper than converting every value.
        return col.cast(col.type.value_type).to_pylist()  # type: ignore[no-any-return]
    else:
        vals = col.dictionary.to_pylist()
    idx = col.indices.to_pylist()
    if col.null_count:
        return [None if i is None else vals[i] for i in idx]
    return list(map(vals.__getitem__, idx))


_SLICE = 1 << 16


def _alias_links(ll: pa.Table) -> Iterable[pa.Table]:
    """The ``_layers`` links whose target is not the digest of their path (alias links), a
    slice at a time: decoding both columns of millions of links at once cost ~150 B a link."""
    for batch in ll.select(["repository", "digest", "target"]).to_batches(_SLICE):
        digest, target = (decoded(pa.chunked_array([c])) for c in batch.columns[1:])
        differ = pc.or_(pc.is_null(digest), pc.fill_null(pc.not_equal(digest, target), False))
        keep = pc.and_(pc.is_valid(target), differ)
        if pc.any(keep).as_py():
            yield pa.Table.from_batches([batch]).filter(keep)


def places(col: pa.ChunkedArray, named: pa.Array) -> pa.ChunkedArray:
    """Per row of the digest column ``col``, the place of its digest in ``named`` (null where
    it is not there). A column whose dictionary is ``named`` itself (``share_digests``) is its
    indices: nothing to look up."""
    if pa.types.is_dictionary(col.type) and all(
        identity(c.dictionary) == identity(named) for c in col.chunks
    ):
        return pa.chunked_array([c.indices for c in col.chunks], col.type.index_type)
    return by_value(col, lambda v: pc.index_in(v, value_set=named))


def _runs(
    parent_at: pa.ChunkedArray, children: list[str], names: list[str]
) -> dict[str, tuple[str, ...]]:
    """parent -> its ``children``, the parents given by their places in ``names`` (one per
    row, in the rows' order). The snapshot lists a manifest's references together, so a
    parent's children are one run of rows, taken as one slice, not a row at a time (a parent
    in several runs gets them all)."""
    at = one_array(parent_at).to_numpy()
    starts = (np.flatnonzero(at[1:] != at[:-1]) + 1).tolist()
    out: dict[str, tuple[str, ...]] = {}
    for a, b in zip([0, *starts], [*starts, len(at)], strict=True):
        if a == b:
            continue  # no rows
        key = names[at[a]]
        run = tuple(children[a:b])
        out[key] = run if key not in out else out[key] + run
    return out


def _unstored(
    refs: pa.Table, stored: pa.Array, url_refs: set[tuple[str, str]]
) -> dict[str, list[tuple[str, str]]]:
    """Graph.unstored, from the strong references ``refs`` and, per reference, whether its
    child is a stored blob."""
    odd = refs.filter(pc.and_(pc.invert(kind_is(refs, "manifest")), pc.invert(stored)))
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for parent, child, kind in zip(
        pylist(odd["parent"]), pylist(odd["child"]), pylist(odd["kind"]), strict=True
    ):
        if (parent, child) not in url_refs:
            out[parent].append((child, kind))
    return dict(out)


def kind_is(refs: pa.Table, kind: str) -> pa.ChunkedArray:
    """Per reference: its kind is ``kind`` (compared once per dictionary value, not on a
    decoded copy of every reference's kind)."""
    return pc.fill_null(by_value(refs["kind"], lambda v: pc.equal(v, kind)), False)


def named_digests(snap: Snapshot) -> pa.Array:
    """Every digest a table other than ``blobs`` names (a superset: a dictionary column gives
    its dictionary, which may hold values no row uses any more)."""
    parts: dict[tuple[int, ...], pa.Array] = {}  # by identity: dictionaries may be shared
    for name, columns in DIGEST_COLUMNS.items():
        if name not in snap:
            continue
        for c in columns:
            col = snap[name][c]
            if pa.types.is_dictionary(col.type):
                parts.update((identity(chunk.dictionary), chunk.dictionary) for chunk in col.chunks)
            else:
                parts.update((identity(chunk), chunk) for chunk in col.chunks)
    if len(parts) == 1:
        # One dictionary for every column (share_digests): it is the answer as it is, its
        # values distinct (it is sorted: cheap to check), and every column's indices are
        # places in it.
        (only,) = parts.values()
        if pa.types.is_string(only.type) and ascending(only):
            return only
    if not parts:
        return pa.nulls(0, pa.string())
    return pc.unique(pa.chunked_array(list(parts.values()), pa.string()))
