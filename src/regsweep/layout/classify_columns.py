"""Classify a whole listing at once, with Arrow string kernels instead of Python per key.

The five common shapes (blob data, ``_layers`` links, revision links, tag ``current`` and
``index`` links, all with sha256 digests) make up nearly every key of a store. Each is told by
its fixed components at fixed offsets from either end of the key, and its parts are cut there.
Every other key, and every near miss, is left for ``keys.classify`` (the general grammar), so
both give the same answer: a test compares them on every shape and its near misses.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from regsweep.layout.keys import Kind

_HEX = "^[0-9a-f]{64}$"
# A valid tag (keys._TAG): [\w][\w.-]{0,127}, ASCII. An invalid one is FOREIGN: left to classify.
_TAG = "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
_REPOS = len("repositories/")
_BLOBS = len("blobs/sha256/")
_LINK_END = len("/link")
_DIGEST_END = 64 + _LINK_END  # "<hex>/link"
# What sits between the repository name and "<hex>/link", by kind; for tags, between
# "<name>/_manifests/tags/<tag>" and the end.
_LAYER_MID = "/_layers/sha256/"
_REVISION_MID = "/_manifests/revisions/sha256/"
_INDEX_MID = "/index/sha256/"
_CURRENT_END = "/current/link"
_TAGS = "/_manifests/tags/"
# A repository name ends at its first reserved component; a name that holds one was cut in the
# wrong place, so the general grammar decides.
_RESERVED_INSIDE = "(^|/)_(layers|manifests|uploads)(/|$)"


def _slice(col: pa.Array, start: int, stop: int | None = None) -> pa.Array:
    # Byte offsets: every matched key is ASCII from the end of the repository name on, and the
    # root and "repositories/" are ASCII, so bytes and characters agree where we cut.
    cut = pc.binary_slice(col.cast(pa.binary()), start, stop if stop is not None else 2**31 - 1)
    return cut.cast(pa.string())


def _digest(hex_: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise("sha256", hex_, ":")


def split_kinds(listing: pa.Table, root_len: int) -> tuple[dict[Kind, pa.Table], pa.Table]:
    """Split a listing table (keys under a layout root ``root_len`` bytes long) into one table
    per common kind, each with the listing's columns plus ``repo``, ``tag`` and ``digest`` (the
    digest the path says; null for tag ``current`` links), and the rest: the rows
    ``keys.classify`` must decide.

    Each shape is recognised by its fixed components at fixed offsets from the ends, and its
    hex by one anchored expression: a handful of byte comparisons per key, where a regular
    expression over the whole key cost several times more."""
    out: dict[Kind, pa.Table] = {}
    if listing.num_rows == 0:
        return out, listing
    listing = listing.combine_chunks()
    rel = _slice(listing["key"].chunk(0), root_len)
    size = pc.binary_length(rel.cast(pa.binary()))
    in_repos = pc.starts_with(rel, "repositories/")
    in_blobs = pc.starts_with(rel, "blobs/sha256/")
    # A filesystem listing comes a group of repositories or of blob shards at a time: the
    # shapes of the other part are not looked for (their checks cost as much as the rest).
    blobs, repos = pc.any(in_blobs).as_py(), pc.any(in_repos).as_py()
    if not blobs and not repos:
        return out, listing
    blob_hex = _slice(rel, _BLOBS + 3, _BLOBS + 3 + 64) if blobs else None
    link_hex = _slice(rel, -_DIGEST_END, -_LINK_END) if repos else None
    # One pass of the hex check: over the blob's hex for blob keys, the link's for the rest.
    if blob_hex is None or link_hex is None:
        hex_ok = pc.match_substring_regex(blob_hex if link_hex is None else link_hex, _HEX)
    else:
        hex_ok = pc.match_substring_regex(pc.if_else(in_blobs, blob_hex, link_hex), _HEX)
    digest_link = pc.and_(pc.and_(in_repos, pc.ends_with(rel, "/link")), hex_ok)

    def mid_is(text: str) -> pa.Array:
        at = -(_DIGEST_END + len(text))
        return pc.and_(
            pc.and_(digest_link, pc.greater(size, _REPOS - at)),  # a name of one byte or more
            pc.equal(_slice(rel, at, -_DIGEST_END), text),
        )

    hits: dict[Kind, pa.Array] = {}
    if blob_hex is not None:
        hits[Kind.BLOB_DATA] = pc.and_(
            pc.and_(in_blobs, pc.equal(size, _BLOBS + 3 + 64 + 5)),
            pc.and_(
                pc.and_(
                    pc.ends_with(rel, "/data"), pc.equal(_slice(rel, _BLOBS + 2, _BLOBS + 3), "/")
                ),
                pc.and_(hex_ok, pc.equal(_slice(rel, _BLOBS, _BLOBS + 2), _slice(blob_hex, 0, 2))),
            ),
        )
    if repos:
        hits[Kind.LAYER_LINK] = mid_is(_LAYER_MID)
        hits[Kind.REVISION_LINK] = mid_is(_REVISION_MID)
        hits[Kind.TAG_INDEX] = mid_is(_INDEX_MID)
        hits[Kind.TAG_CURRENT] = pc.and_(in_repos, pc.ends_with(rel, _CURRENT_END))
    claimed = None
    bounced: list[pa.Table] = []  # matched a shape, but a check on its parts failed
    for kind, hit in hits.items():
        # The shapes exclude each other (they differ in the fixed components before the
        # digest), so each row is matched by at most one.
        claimed = hit if claimed is None else pc.or_(claimed, hit)
        if kind is Kind.BLOB_DATA:  # every check is in the hit (the fan-out directory too)
            assert blob_hex is not None
            # A batch of blob shards is blobs in every row: taken as it is, not copied.
            every = hit.null_count == 0 and pc.all(hit).as_py()
            part = listing if every else listing.filter(hit)
            none = pa.nulls(part.num_rows, pa.string())
            out[kind] = (
                part.append_column("repo", none)
                .append_column("tag", none)
                .append_column("digest", _digest(blob_hex if every else blob_hex.filter(hit)))
            )
            del part, blob_hex
            continue
        part_rel = rel.filter(hit)
        part = listing.filter(hit)
        none = pa.nulls(len(part_rel), pa.string())
        if kind in (Kind.TAG_INDEX, Kind.TAG_CURRENT):
            # "<name>/_manifests/tags/<tag>": the tag follows the last "/_manifests/tags/".
            end = len(_CURRENT_END) if kind is Kind.TAG_CURRENT else _DIGEST_END + len(_INDEX_MID)
            pieces = pc.split_pattern(
                _slice(part_rel, _REPOS, -end), _TAGS, max_splits=1, reverse=True
            )
            pieces = pc.if_else(pc.equal(pc.list_value_length(pieces), 2), pieces, None)
            repo, tag = pc.list_element(pieces, 0), pc.list_element(pieces, 1)
            ok = pc.and_(pc.greater(pc.utf8_length(repo), 0), pc.match_substring_regex(tag, _TAG))
        else:
            mid = _LAYER_MID if kind is Kind.LAYER_LINK else _REVISION_MID
            repo, tag = _slice(part_rel, _REPOS, -(_DIGEST_END + len(mid))), none
            ok = pc.is_valid(repo)
        hex_ = none if kind is Kind.TAG_CURRENT else _slice(part_rel, -_DIGEST_END, -_LINK_END)
        ok = pc.fill_null(
            pc.and_(ok, pc.invert(pc.match_substring_regex(repo, _RESERVED_INSIDE))), False
        )
        if not pc.all(ok).as_py():
            bounced.append(part.filter(pc.invert(ok)))
            part, repo, tag, hex_ = (x.filter(ok) for x in (part, repo, tag, hex_))
        out[kind] = (
            part.append_column("repo", repo)
            .append_column("tag", tag)
            .append_column("digest", _digest(hex_))
        )
    rest = listing if claimed is None else listing.filter(pc.invert(claimed))
    return out, pa.concat_tables([rest, *bounced]) if bounced else rest
