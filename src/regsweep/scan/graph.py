"""The reference graph of a Snapshot: manifests -> (config, layers, child manifests, blobs).

Shared by gc's mark phase and the usage reports, so both agree on what an image needs.
Children are followed wherever their manifest was read, in any repository (a superset of
Distribution's same-repository recursion, which keeps more, never less).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from regsweep.layout.digest_columns import SHA256_BYTES, bytes_or_null, text_of
from regsweep.scan.snapshot import (
    DIGEST_COLUMNS,
    Snapshot,
    ascending,
    by_value,
    decoded,
    dictionaries,
    identity,
    is_sorted_text,
    one_array,
    sorted_places,
)


class Graph:
    """The graph over the places of digests in ``named`` (every digest the snapshot names,
    sorted): numpy arrays of a few bytes a digest and an edge, not a Python string per digest
    in several dicts (those were ~80 MiB for a store of 94k manifests, held through the mark
    and the plan). The mark and the plan work on places; the string API below (``blob_sizes``,
    ``edges``, ``closure``, ...) serves retention, the reports and the audit, and is built the
    first time one of them asks."""

    def __init__(
        self,
        named: pa.Array,
        sizes: np.ndarray,
        edges_at: tuple[np.ndarray, np.ndarray],
        manifest_children_at: tuple[np.ndarray, np.ndarray],
        kind_at: np.ndarray,
        kind_names: list[str],
        problem_at: dict[int, str],
        subjects: dict[str, str],
        aliases: dict[str, dict[str, str]],
        alias_at: dict[str, tuple[np.ndarray, np.ndarray]],
        url_refs: set[tuple[str, str]],
        unstored_at: dict[int, list[tuple[int, str, str]]],
        stored: tuple[int, int],
    ) -> None:
        # Every named digest, sorted and distinct: a digest's place. As text, or as the bytes
        # each spells (SHA256_BYTES, see share_digests): ``digests_at`` and ``names`` give text.
        self.named = named
        # Per place: the size of the stored blob, -1 where no blob is stored (named only).
        self.sizes = sizes
        # Per place: its children over strong edges, in the order its manifest lists them, as
        # CSR (starts, children): the children of place p are children[starts[p]:starts[p+1]].
        self.edges_at = edges_at
        self.manifest_children_at = manifest_children_at  # of those, the manifest children
        self.kind_at = kind_at  # per place: the index in kind_names of its manifest kind, or -1
        self.kind_names = kind_names
        self.problem_at = problem_at  # place -> the problem of its manifest
        self.subjects = subjects  # referrer -> subject digest (weak edge)
        self.aliases = aliases  # repo -> {alias: canonical}
        self.alias_at = alias_at  # the same as places: repo -> (aliases, sorted; targets)
        self.url_refs = url_refs  # (parent, child) with urls
        # parent place -> [(child place, child, kind)]: the strong edges to a config, layer or
        # blob that is not stored and has no urls (index children may legitimately be absent,
        # §3.3). Only these can be missing blobs; found in Arrow, as nearly every child is stored.
        self.unstored_at = unstored_at
        self.stored_blobs, self.stored_bytes = stored  # every stored blob, named or not
        self._seen = np.zeros(len(named), bool)  # reach's scratch: all False between calls

    @classmethod
    def from_snapshot(cls, snap: Snapshot) -> Graph:
        # Column by column, the rare rows (subjects, urls, alias links) picked out in Arrow
        # first: this runs on every gc plan, over every reference and link of the store.
        named = named_digests(snap)
        n = len(named)

        def where_named(col: pa.ChunkedArray, dtype: type = np.int64) -> np.ndarray:
            """The places of ``col``'s digests, -1 for a null one."""
            at = places(col, named)
            if at.null_count != col.null_count:  # named_digests covers every column read here
                raise AssertionError("a digest missing from named_digests would be lost")
            return np.asarray(one_array(pc.fill_null(at, -1)).to_numpy(), dtype)

        # The stored blobs something names, as their sizes by place, counting the rest a part
        # at a time (a store can hold millions that nothing names).
        count = total = 0
        sizes = np.full(n, -1, np.int64)
        for part in snap.parts("blobs", ("digest", "size")):
            count += part.num_rows
            total += int(pc.sum(part["size"]).as_py() or 0)
            where = places(part["digest"], named)
            stored_here = pc.is_valid(where)
            at = one_array(where.filter(stored_here)).to_numpy()
            sizes[at] = one_array(pc.fill_null(part["size"].filter(stored_here), 0)).to_numpy()
            del part, where, stored_here, at
        refs = snap["references"]
        is_subject = kind_is(refs, "subject")
        subj = refs.filter(is_subject)
        subjects = dict(zip(pylist(subj["parent"]), pylist(subj["child"]), strict=True))
        with_urls = refs.filter(pc.fill_null(refs["has_urls"], False))
        url_refs = set(zip(pylist(with_urls["parent"]), pylist(with_urls["child"]), strict=True))
        if subj.num_rows:
            refs = refs.filter(pc.invert(is_subject))
        # As int32 (places of ``named``), not int64: two arrays of every reference, ~9 MiB
        # less at 1.2M references, held through the edges' sorts (_csr), the mark's peak.
        parent_at = where_named(refs["parent"], np.int32)
        child_at = where_named(refs["child"], np.int32)
        is_manifest = kind_is(refs, "manifest")
        unstored = _unstored(refs, parent_at, child_at, sizes, is_manifest, url_refs)
        edges = _csr(parent_at, child_at, n)
        mask = one_array(is_manifest).to_numpy(zero_copy_only=False)
        manifest_children = _csr(parent_at[mask], child_at[mask], n)
        del parent_at, child_at, mask
        m = snap["manifests"]
        m_at = where_named(m["digest"])
        kinds = one_array(m["kind"])
        kinds = kinds if pa.types.is_dictionary(kinds.type) else kinds.dictionary_encode()
        kind_at = np.full(n, -1, np.int8)
        kind_at[m_at[m_at >= 0]] = pc.fill_null(kinds.indices, -1).to_numpy()[m_at >= 0]
        has_problem = pc.is_valid(m["problem"])
        problem_at = dict(
            zip(
                m_at[one_array(has_problem).to_numpy(zero_copy_only=False)].tolist(),
                pylist(m["problem"].filter(has_problem)),
                strict=True,
            )
        )
        aliases: dict[str, dict[str, str]] = defaultdict(dict)
        alias_pairs: dict[str, dict[int, int]] = defaultdict(dict)
        for ll in _alias_links(snap["layer_links"], named):
            for repo, digest, target, src, dst in zip(
                pylist(ll["repository"]),
                pylist(ll["digest"]),
                pylist(ll["target"]),
                where_named(ll["digest"]).tolist(),
                where_named(ll["target"]).tolist(),
                strict=True,
            ):
                aliases[repo][digest] = target
                if src >= 0 and dst >= 0:
                    alias_pairs[repo][src] = dst
        alias_at = {
            repo: (np.array(sorted(pairs), np.int64), np.array([pairs[k] for k in sorted(pairs)]))
            for repo, pairs in alias_pairs.items()
        }
        return cls(
            named,
            sizes,
            edges,
            manifest_children,
            kind_at,
            kinds.dictionary.to_pylist(),
            problem_at,
            subjects,
            dict(aliases),
            alias_at,
            url_refs,
            unstored,
            (count, total),
        )

    # -- places ------------------------------------------------------------------------------

    def places_of(self, digests: Iterable[str]) -> np.ndarray:
        """The places of ``digests`` (one lookup for them all), -1 where one is not named."""
        values = _like(pa.array(list(digests), pa.string()), self.named)
        return np.asarray(pc.fill_null(_index_in(values, self.named), -1), np.int64)

    def column_places(self, col: pa.ChunkedArray) -> np.ndarray:
        """Per row of the digest column ``col``: its place, -1 where null or not named."""
        return column_places(col, self.named)

    def digests_at(self, at: np.ndarray) -> pa.Array:
        """The digests at places ``at``, as text (sorted when ``at`` is)."""
        return text_of(self.named.take(pa.array(np.asarray(at, np.int64))))

    def digest_at(self, at: int) -> str:
        """The digest at place ``at``, as text."""
        return str(text_of(self.named.slice(at, 1))[0].as_py())

    def problem(self, at: int) -> str | None:
        """Why the manifest at place ``at`` cannot be used, or None (a stored blob named as a
        manifest that was not read as one has a problem too)."""
        if at < 0:
            return None
        if self.sizes[at] >= 0 and self.kind_at[at] < 0:
            return "manifest blob was not read"
        return self.problem_at.get(at)

    def stored(self, at: int) -> bool:
        return at >= 0 and bool(self.sizes[at] >= 0)

    def canonical_at(self, repo: str | None, at: int) -> int:
        """``canonical`` on places: the alias link's target where ``at`` is not stored."""
        if at < 0 or self.sizes[at] >= 0:
            return at
        src, dst = self.alias_places(repo)
        i = int(np.searchsorted(src, at))
        return int(dst[i]) if i < len(src) and src[i] == at else at

    def alias_places(self, repo: str | None) -> tuple[np.ndarray, np.ndarray]:
        """The repository's alias links as places: (aliases, sorted; their targets)."""
        if repo is None:
            return NO_PLACES, NO_PLACES
        return self.alias_at.get(repo, (NO_PLACES, NO_PLACES))

    def reach(
        self, roots: np.ndarray, aliases: tuple[np.ndarray, np.ndarray] | None = None
    ) -> np.ndarray:
        """Every place reachable from the places ``roots`` over strong edges, roots included,
        sorted; an unstored alias digest (``aliases``: ``alias_places``) leads to its
        canonical blob. Level by level on arrays: a Python step per level, not per digest."""
        starts, children = self.edges_at
        alias_src, alias_dst = aliases if aliases is not None else (NO_PLACES, NO_PLACES)
        seen = self._seen
        frontier = np.unique(np.asarray(roots, np.int64))
        frontier = frontier[frontier >= 0]
        found = [frontier]
        seen[frontier] = True
        try:
            while len(frontier):
                lo, hi = starts[frontier], starts[frontier + 1]
                new = children[ranges(lo, hi - lo)]
                if len(alias_src):
                    odd = frontier[self.sizes[frontier] < 0]
                    pos = np.searchsorted(alias_src, odd)
                    ok = pos < len(alias_src)
                    ok[ok] = alias_src[pos[ok]] == odd[ok]
                    new = np.concatenate([new, alias_dst[pos[ok]]])
                new = np.unique(new)
                frontier = new[~seen[new]]
                seen[frontier] = True
                found.append(frontier)
        finally:
            for f in found:
                seen[f] = False
        return np.sort(np.concatenate(found))

    # -- the string API (retention, reports, audit) ------------------------------------------

    @cached_property
    def names(self) -> list[str]:
        return text_of(self.named).to_pylist()  # type: ignore[no-any-return]

    @cached_property
    def _place(self) -> dict[str, int]:
        return {d: i for i, d in enumerate(self.names)}

    @cached_property
    def blob_sizes(self) -> dict[str, int]:
        """The sizes of the stored blobs that something in the snapshot names (a reference, a
        manifest, a link or a tag)."""
        at = np.flatnonzero(self.sizes >= 0)
        names = self.names
        return dict(zip((names[i] for i in at.tolist()), self.sizes[at].tolist(), strict=True))

    @cached_property
    def edges(self) -> dict[str, tuple[str, ...]]:
        """parent -> its children over strong edges, in the order its manifest lists them."""
        return self._runs(self.edges_at)

    @cached_property
    def manifest_children(self) -> dict[str, tuple[str, ...]]:
        """parent -> the children it lists as manifests."""
        return self._runs(self.manifest_children_at)

    def _runs(self, csr: tuple[np.ndarray, np.ndarray]) -> dict[str, tuple[str, ...]]:
        starts, children = csr
        names = self.names
        kids = [names[c] for c in children.tolist()]
        bounds = starts.tolist()
        return {
            names[p]: tuple(kids[bounds[p] : bounds[p + 1]])
            for p in np.flatnonzero(np.diff(starts)).tolist()
        }

    @cached_property
    def manifest_kind(self) -> dict[str, str]:
        names, kinds = self.names, self.kind_names
        at = np.flatnonzero(self.kind_at >= 0)
        return {
            names[i]: kinds[k] for i, k in zip(at.tolist(), self.kind_at[at].tolist(), strict=True)
        }

    @cached_property
    def manifest_problem(self) -> dict[str, str]:
        return {self.names[i]: p for i, p in self.problem_at.items()}

    @cached_property
    def unstored(self) -> dict[str, list[tuple[str, str]]]:
        return {
            self.names[p]: [(child, kind) for _, child, kind in gone]
            for p, gone in self.unstored_at.items()
        }

    def has_urls(self, parent: str, child: str) -> bool:
        """A foreign or non-distributable layer: it may legitimately be absent."""
        return (parent, child) in self.url_refs

    def canonical(self, repo: str | None, digest: str) -> str:
        """The stored blob for ``digest``: itself, or the target of the repository's alias link
        (a ``sha512:`` layer reference is stored under its sha256, storage-layout.md §7.10)."""
        if digest in self.blob_sizes or repo is None:
            return digest
        return self.aliases.get(repo, {}).get(digest, digest)

    def closure(self, repo: str | None, roots: Iterable[str]) -> set[str]:
        """Every digest reachable from ``roots`` over strong edges, roots included, with alias
        digests replaced by their canonical blobs (the alias digest itself is kept too)."""
        roots = set(roots)
        place = self._place
        at = np.array([place[d] for d in roots if d in place], np.int64)
        names = self.names
        reached = self.reach(at, self.alias_places(repo))
        return roots | {names[i] for i in reached.tolist()}


NO_PLACES = np.zeros(0, np.int64)


def pair_keys(codes: np.ndarray, at: np.ndarray) -> np.ndarray:
    """One int64 key per (code, place) pair, ``code << 32 | place``, sorting by code and then
    place (a repository's code and a digest's place, say); -1 where either is -1."""
    codes, at = np.asarray(codes, np.int64), np.asarray(at, np.int64)
    return np.where((codes >= 0) & (at >= 0), (codes << 32) | at, -1)


def among(values: np.ndarray, sorted_values: np.ndarray) -> np.ndarray:
    """Per value: it is in ``sorted_values`` (a binary search each, no hash table)."""
    if not len(sorted_values):
        return np.zeros(len(values), bool)
    pos = np.minimum(np.searchsorted(sorted_values, values), len(sorted_values) - 1)
    return np.asarray(sorted_values[pos] == values, bool)


def has_place(places: np.ndarray, at: int) -> bool:
    """``at`` is among the sorted ``places``."""
    i = int(np.searchsorted(places, at))
    return i < len(places) and int(places[i]) == at


def sorted_range(named: pa.Array, digests: pa.Array | pa.ChunkedArray) -> tuple[int, int]:
    """The places in ``named`` (sorted) from the least to the greatest of ``digests`` (of a
    dictionary column, of its dictionaries' values: at most a wider range)."""
    if pa.types.is_dictionary(digests.type):
        digests = pa.chunked_array(dictionaries(digests), digests.type.value_type)
    if isinstance(digests, pa.ChunkedArray):
        digests = pa.chunked_array([_like(c, named) for c in digests.chunks], named.type)
    else:
        digests = _like(digests, named)
    bounds = pc.min_max(digests).as_py()
    if bounds["min"] is None:
        return 0, 0
    return _bisect(named, bounds["min"]), _bisect(named, bounds["max"], right=True)


def _bisect(values: pa.Array, x: str | bytes, *, right: bool = False) -> int:
    """bisect_left (``right``: bisect_right) of ``x`` in the sorted ``values`` (strings, or
    bytes, as ``x`` is)."""
    lo, hi = 0, len(values)
    while lo < hi:
        mid = (lo + hi) // 2
        v = values[mid].as_py()
        if v < x or (right and v == x):
            lo = mid + 1
        else:
            hi = mid
    return lo


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The indices starts[i] .. starts[i] + lengths[i] - 1 of every i, one after another."""
    total = int(lengths.sum())
    if not total:
        return NO_PLACES
    keep = lengths > 0
    starts, lengths = starts[keep], lengths[keep]
    shift = starts - np.concatenate(([0], np.cumsum(lengths)[:-1]))
    return np.repeat(shift, lengths) + np.arange(total)


def _csr(parents: np.ndarray, children: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(starts, children) of the edges parents[i] -> children[i]: a parent's children in the
    order of the rows (a stable sort; the snapshot lists them so already, by parent)."""
    keep = (parents >= 0) & (children >= 0)
    if not keep.all():  # (a filter is a copy of both, even where it keeps every edge)
        parents, children = parents[keep], children[keep]
    del keep
    if len(parents) and not (parents[1:] >= parents[:-1]).all():
        order = np.argsort(parents, kind="stable")
        parents, children = parents[order], children[order]
    # Edges' offsets as int32 where they fit: 4 bytes a digest of the store, not 8 (two such
    # arrays, ~7 MiB less at 950k digests).
    starts = np.zeros(n + 1, np.int32 if len(parents) < 2**31 else np.int64)
    np.cumsum(np.bincount(parents, minlength=n), out=starts[1:])
    return starts, children.astype(np.int32, copy=False)


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
        return text_of(col).to_pylist()  # type: ignore[no-any-return]
    if shared is not None:
        # The values the rows use, each converted once for every column given ``shared``
        # (a digest column's dictionary is every digest of the snapshot, see share_digests).
        if (vals := shared.get(same := identity(col.dictionary))) is None:
            vals = shared[same] = [None] * len(col.dictionary)
        used = pc.unique(col.indices).drop_null().to_numpy()
        new = [int(i) for i in used if vals[i] is None]
        if new:
            picked = text_of(col.dictionary.take(pa.array(new, pa.int32()))).to_pylist()
            for i, v in zip(new, picked, strict=True):
                vals[i] = v
    elif len(col.dictionary) > len(col):
        # A filtered column keeps its whole dictionary (say, every blob of the store):
        # decoding the rows is cheaper than converting every value.
        return decoded(pa.chunked_array([col])).to_pylist()  # type: ignore[no-any-return]
    else:
        vals = text_of(col.dictionary).to_pylist()
    idx = col.indices.to_pylist()
    if col.null_count:
        return [None if i is None else vals[i] for i in idx]
    return list(map(vals.__getitem__, idx))


_SLICE = 1 << 16


def _alias_links(ll: pa.Table, named: pa.Array) -> Iterable[pa.Table]:
    """The ``_layers`` links whose target is not the digest of their path (alias links), a
    slice at a time: decoding both columns of millions of links at once cost ~150 B a link.
    Where both columns are over ``named`` itself (share_digests: distinct digests, see
    named_digests), equal digests are equal indices, as ``places`` uses them: both columns
    decoded, a slice at a time, were the graph's peak (~4 MiB over its level at 815k links)."""
    ll = ll.select(["repository", "digest", "target"])
    by_index = all(
        pa.types.is_dictionary(ll[name].type)
        and all(identity(c.dictionary) == identity(named) for c in ll[name].chunks)
        for name in ("digest", "target")
    )
    for batch in ll.to_batches(_SLICE):
        digest, target = batch.columns[1:]
        if by_index:
            digest, target = digest.indices, target.indices
        else:
            digest, target = (decoded(pa.chunked_array([c])) for c in (digest, target))
        differ = pc.or_(pc.is_null(digest), pc.fill_null(pc.not_equal(digest, target), False))
        keep = pc.and_(pc.is_valid(target), differ)
        if pc.any(keep).as_py():
            yield pa.Table.from_batches([batch]).filter(keep)


def column_places(col: pa.ChunkedArray, named: pa.Array) -> np.ndarray:
    """Per row of the digest column ``col``: its place in ``named``, -1 where null or not
    there (``places``, as numpy)."""
    return np.asarray(one_array(pc.fill_null(places(col, named), -1)), np.int64)


def places(col: pa.ChunkedArray, named: pa.Array) -> pa.ChunkedArray:
    """Per row of the digest column ``col``, the place of its digest in ``named`` (null where
    it is not there). A column whose dictionary is ``named`` itself (``share_digests``) is its
    indices: nothing to look up. Otherwise each chunk's values (a dictionary column's: each
    distinct dictionary's) are looked up among the named digests in their range only, by
    binary search where they and that range are of one length (``sorted_places``: a digest
    algorithm's digests are), which builds nothing of the size of ``named``. The rest are
    hashed, once for them all where their ranges overlap: a value set of every named digest
    was ~50 MiB at 1M objects."""
    if pa.types.is_dictionary(col.type) and all(
        identity(c.dictionary) == identity(named) for c in col.chunks
    ):
        return pa.chunked_array([c.indices for c in col.chunks], col.type.index_type)
    # (Empty chunks left out: a filtered table keeps them, each with its whole dictionary.)
    col = pa.chunked_array([c for c in col.chunks if len(c)], col.type)
    values = dictionaries(col) if pa.types.is_dictionary(col.type) else list(col.chunks)
    found: dict[tuple[int, ...], pa.Array] = {}  # by the identity of the values looked up
    rising = is_sorted_text(named)  # (and so each range of it)
    hashed: list[tuple[tuple[int, ...], pa.Array, int, int]] = []  # (as ``found``, values, range)
    for original in values:
        key, v = identity(original), _like(original, named)
        lo, hi = sorted_range(named, v)
        at = sorted_places(v, named.slice(lo, hi - lo), rising=rising)
        if at is None:
            hashed.append((key, v, lo, hi))
        else:
            found[key] = pa.array(at + np.int32(lo), pa.int32(), mask=at < 0)
        del original, v
    if sum(hi - lo for _, _, lo, hi in hashed) > len(named):  # they overlap: one lookup for all
        together = _index_in(pa.concat_arrays([v for _, v, _, _ in hashed]), named)
        start = 0
        for key, v, _, _ in hashed:
            found[key] = together.slice(start, len(v))
            start += len(v)
    else:
        for key, v, lo, hi in hashed:
            within = pc.index_in(v, value_set=named.slice(lo, hi - lo))
            found[key] = pc.add(within, pa.scalar(lo, pa.int32())) if lo else within
    if not pa.types.is_dictionary(col.type):
        return pa.chunked_array([found[identity(c)] for c in col.chunks], pa.int32())
    return pa.chunked_array(
        [found[identity(c.dictionary)].take(c.indices) for c in col.chunks], pa.int32()
    )


def _like(values: pa.Array, named: pa.Array) -> pa.Array:
    """Digests ``values`` as ``named`` holds them: as their bytes where it holds bytes (null
    where one is not a sha256 digest: it cannot be there), else as text."""
    if named.type == SHA256_BYTES:
        return bytes_or_null(values)
    return text_of(values)


def _index_in(values: pa.Array | pa.ChunkedArray, named: pa.Array) -> pa.Array:
    """``pc.index_in(values, value_set=named)``, hashing the smaller side: a few digests (a
    plan's removed manifests) are looked up by finding every named digest among them, not by
    a value set of every named digest (~50 MiB at 1M objects)."""
    distinct = pc.unique(values).drop_null()
    if len(distinct) * 2 >= len(named):
        return pc.index_in(values, value_set=named)
    among = pc.index_in(named, value_set=distinct)  # per place: its index among ``distinct``
    found = np.asarray(pc.is_valid(among))
    place = np.full(len(distinct), -1, np.int32)
    place[np.asarray(among.filter(pa.array(found)), np.int64)] = np.flatnonzero(found)
    at = np.asarray(pc.fill_null(pc.index_in(values, value_set=distinct), 0), np.int64)
    out = place[at] if len(distinct) else np.full(len(values), -1, np.int32)
    return pa.array(out, pa.int32(), mask=(out < 0) | np.asarray(pc.is_null(values)))


def _unstored(
    refs: pa.Table,
    parent_at: np.ndarray,
    child_at: np.ndarray,
    sizes: np.ndarray,
    is_manifest: pa.ChunkedArray,
    url_refs: set[tuple[str, str]],
) -> dict[int, list[tuple[int, str, str]]]:
    """Graph.unstored_at, from the strong references ``refs`` and their places."""
    stored = child_at >= 0
    stored[stored] = sizes[child_at[stored]] >= 0
    odd = ~stored & ~one_array(is_manifest).to_numpy(zero_copy_only=False)
    rows = pa.array(np.flatnonzero(odd))
    few = refs.take(rows)
    out: dict[int, list[tuple[int, str, str]]] = defaultdict(list)
    for p, c, parent, child, kind in zip(
        parent_at[odd].tolist(),
        child_at[odd].tolist(),
        pylist(few["parent"]),
        pylist(few["child"]),
        pylist(few["kind"]),
        strict=True,
    ):
        if (parent, child) not in url_refs:
            out[p].append((c, child, kind))
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
        if only.type in (pa.string(), SHA256_BYTES) and ascending(only):
            return only
    if not parts:
        return pa.nulls(0, pa.string())
    # Sorted, as share_digests's is: the graph's places then compare as their digests do.
    texts = [text_of(p) for p in parts.values()]
    distinct = pc.unique(pa.chunked_array(texts, pa.string())).drop_null()
    return distinct.take(pc.array_sort_indices(distinct))
