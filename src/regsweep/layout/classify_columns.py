"""Classify a whole listing at once, with Arrow string kernels instead of Python per key.

The five common shapes (blob data, ``_layers`` links, revision links, tag ``current`` and
``index`` links, all with sha256 digests) make up nearly every key of a store. Each is matched
by an anchored regular expression (RE2, no capture: capturing is ten times slower) and its
parts are then cut at fixed offsets from either end. Every other key, and every near miss, is
left for ``keys.classify`` (the general grammar), so both give the same answer: a test compares
them on every shape and its near misses.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from regsweep.layout.keys import Kind

_HEX = "[0-9a-f]{64}"
# A valid tag (keys._TAG): [\w][\w.-]{0,127}, ASCII. An invalid one is FOREIGN: left to classify.
_TAG = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_REPOS = len("repositories/")
_BLOBS = len("blobs/sha256/")
_LINK_END = len("/link")

# kind -> (pattern, characters after the repository name or None for blobs)
_SHAPES: dict[Kind, tuple[str, int | None]] = {
    Kind.BLOB_DATA: (f"^blobs/sha256/[0-9a-f]{{2}}/{_HEX}/data$", None),
    Kind.LAYER_LINK: (f"^repositories/.+/_layers/sha256/{_HEX}/link$", 85),
    Kind.REVISION_LINK: (f"^repositories/.+/_manifests/revisions/sha256/{_HEX}/link$", 98),
    # For tags: the characters after "<name>/_manifests/tags/<tag>".
    Kind.TAG_INDEX: (f"^repositories/.+/_manifests/tags/{_TAG}/index/sha256/{_HEX}/link$", 83),
    Kind.TAG_CURRENT: (f"^repositories/.+/_manifests/tags/{_TAG}/current/link$", 13),
}
# A repository name ends at its first reserved component; a name that holds one was cut in the
# wrong place, so the general grammar decides.
_RESERVED_INSIDE = "(^|/)_(layers|manifests|uploads)(/|$)"


def _slice(col: pa.Array, start: int, stop: int | None = None) -> pa.Array:
    return pc.utf8_slice_codeunits(col, start, stop if stop is not None else 2**31 - 1)


def _digest(hex_: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise("sha256", hex_, ":")


def split_kinds(listing: pa.Table, root_len: int) -> tuple[dict[Kind, pa.Table], pa.Table]:
    """Split a listing table (keys under a layout root ``root_len`` characters long) into one
    table per common kind, each with the listing's columns plus ``repo``, ``tag`` and
    ``digest`` (the digest the path says; null for tag ``current`` links), and the rest: the
    rows ``keys.classify`` must decide."""
    out: dict[Kind, pa.Table] = {}
    if listing.num_rows == 0:
        return out, listing
    listing = listing.combine_chunks()
    rel = _slice(listing["key"].chunk(0), root_len)
    unclaimed = pc.is_valid(rel)
    for kind, (pattern, tail) in _SHAPES.items():
        hit = pc.and_(unclaimed, pc.match_substring_regex(rel, pattern))
        part_rel = pc.filter(rel, hit)
        part = listing.filter(hit)
        if kind is Kind.BLOB_DATA:
            hex_ = _slice(part_rel, _BLOBS + 3, _BLOBS + 3 + 64)
            fan_out_ok = pc.equal(_slice(part_rel, _BLOBS, _BLOBS + 2), _slice(hex_, 0, 2))
            hit = pc.and_(hit, _scatter(hit, fan_out_ok))
            part, hex_ = part.filter(fan_out_ok), hex_.filter(fan_out_ok)
            repo = tag = pa.nulls(len(hex_), pa.string())
        else:
            assert tail is not None
            head = _slice(part_rel, _REPOS, -tail)
            if kind in (Kind.TAG_INDEX, Kind.TAG_CURRENT):
                # "<name>/_manifests/tags/<tag>": the tag follows the last "/_manifests/tags/".
                pieces = pc.split_pattern(head, "/_manifests/tags/", max_splits=1, reverse=True)
                repo, tag = pc.list_element(pieces, 0), pc.list_element(pieces, 1)
            else:
                repo, tag = head, pa.nulls(len(head), pa.string())
            hex_ = (
                pa.nulls(len(head), pa.string())
                if kind is Kind.TAG_CURRENT
                else _slice(part_rel, -(64 + _LINK_END), -_LINK_END)
            )
            name_ok = pc.invert(pc.match_substring_regex(repo, _RESERVED_INSIDE))
            hit = pc.and_(hit, _scatter(hit, name_ok))
            part = part.filter(name_ok)
            repo, tag, hex_ = repo.filter(name_ok), tag.filter(name_ok), hex_.filter(name_ok)
        out[kind] = (
            part.append_column("repo", repo)
            .append_column("tag", tag)
            .append_column("digest", _digest(hex_))
        )
        unclaimed = pc.and_(unclaimed, pc.invert(hit))
    return out, listing.filter(unclaimed)


def _scatter(mask: pa.Array, values: pa.Array) -> pa.Array:
    """``values`` (one per true row of ``mask``) spread over ``mask``'s length, false elsewhere."""
    return pc.replace_with_mask(pa.array([False] * len(mask)), mask, values)
