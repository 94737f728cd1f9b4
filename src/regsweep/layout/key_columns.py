"""The keys of blob data and links, built column-wise from what they name.

A scan keeps no key for the blobs and links that ``classify_columns`` recognised: the key
follows from the digest, the repository and the tag, and at millions of rows the keys were the
largest part of a snapshot (about 110 bytes per blob, 140 per link). Such a row's ``key`` is
null in memory and is built here when it is needed: to read or delete the object, and when a
snapshot or a plan is written (files always hold every key). These are the inverse of the
shapes in ``classify_columns`` (and agree with ``keys.blob_data_key``, ``keys.layer_link_key``
and the other link shapes of ``keys``), so only sha256 digests are built; any other key is kept
as listed.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

_SHA256 = len("sha256:")


def _hex(digests: pa.Array) -> pa.Array:
    return pc.utf8_slice_codeunits(digests, _SHA256)


def blob_data_keys(root: str, digests: pa.Array) -> pa.Array:
    """``<root>blobs/sha256/<h2>/<hex>/data`` for each ``sha256:<hex>``."""
    hex_ = _hex(digests)
    return pc.binary_join_element_wise(
        f"{root}blobs/sha256/", pc.utf8_slice_codeunits(hex_, 0, 2), "/", hex_, "/data", ""
    )


def layer_link_keys(root: str, repositories: pa.Array, digests: pa.Array) -> pa.Array:
    """``<root>repositories/<name>/_layers/sha256/<hex>/link`` for each repository and digest."""
    return pc.binary_join_element_wise(
        f"{root}repositories/", repositories, "/_layers/sha256/", _hex(digests), "/link", ""
    )


def revision_link_keys(root: str, repositories: pa.Array, digests: pa.Array) -> pa.Array:
    """``<root>repositories/<name>/_manifests/revisions/sha256/<hex>/link``."""
    return pc.binary_join_element_wise(
        f"{root}repositories/",
        repositories,
        "/_manifests/revisions/sha256/",
        _hex(digests),
        "/link",
        "",
    )


def tag_current_keys(root: str, repositories: pa.Array, tags: pa.Array) -> pa.Array:
    """``<root>repositories/<name>/_manifests/tags/<tag>/current/link``."""
    return pc.binary_join_element_wise(
        f"{root}repositories/", repositories, "/_manifests/tags/", tags, "/current/link", ""
    )


def tag_index_keys(
    root: str, repositories: pa.Array, tags: pa.Array, digests: pa.Array
) -> pa.Array:
    """``<root>repositories/<name>/_manifests/tags/<tag>/index/sha256/<hex>/link``."""
    return pc.binary_join_element_wise(
        f"{root}repositories/",
        repositories,
        "/_manifests/tags/",
        tags,
        "/index/sha256/",
        _hex(digests),
        "/link",
        "",
    )
