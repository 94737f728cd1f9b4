"""sha256 digest columns as 32 bytes a digest, and back as their text.

Digests are text (``sha256:<64 hex>``, 71 bytes) wherever they are shown or written. A scan
that holds millions of them (the ``_layers`` links' digests of a store while it lists, the
snapshot's one dictionary of every digest from its end) can hold the bytes the hex spells
instead, less than half, and turn them into text where they are shown, written or compared
with text. Lower-case hex sorts as the bytes it spells, so a sorted column of either is sorted
as the other.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SHA256_BYTES = pa.binary(32)
_PREFIX = np.frombuffer(b"sha256:", np.uint8)
SHA256_TEXT_BYTES = len(_PREFIX) + 64  # a sha256 digest's text (and a link file's size)
# A byte's two hex digits as one 16-bit value (their bytes in memory order), and back: one
# table look-up a byte each way (~0.3 s per million digests), where a look-up a digit and the
# shifts to join them took longer.
_DIGITS = np.frombuffer(b"".join(f"{i:02x}".encode() for i in range(256)), np.uint16).copy()
_BYTE = np.full(1 << 16, 0x100, np.uint16)  # 0x100: not two lower-case hex digits
_BYTE[_DIGITS] = np.arange(256, dtype=np.uint16)
_CHECK_ROWS = 1 << 14  # digests checked or spelled at a time: ~100 bytes each meanwhile


def as_bytes(digests: pa.Array) -> pa.Array:
    """``digests`` (text, no nulls), each ``sha256:`` and 64 lower-case hex digits, as the 32
    bytes each spells. Any other value is a ValueError: the caller holds digests that the
    listing's shapes (classify_columns) have already checked."""
    n = len(digests)
    if not pa.types.is_string(digests.type) or digests.null_count:
        raise ValueError("sha256 digests as text, without nulls, expected")
    if not n:
        return pa.array([], SHA256_BYTES)
    offsets = np.frombuffer(digests.buffers()[1], np.int32)[digests.offset :][: n + 1]
    if (np.diff(offsets) != SHA256_TEXT_BYTES).any():
        raise ValueError("a digest that is not sha256 with 64 hex digits")
    # In Arrow's memory, not numpy's: many small columns of these held a while (the digests
    # of each batch of manifests read while listing) left glibc's heap in holes once freed.
    buffer = pa.allocate_buffer(n * 32)
    out = np.frombuffer(buffer, np.uint8).reshape(n, 32)
    for start, sha256, spelled in _spelled(digests):
        if not sha256.all():
            raise ValueError("a digest that is not sha256 with lower-case hex")
        out[start : start + len(spelled)] = spelled
    return pa.Array.from_buffers(SHA256_BYTES, n, [None, buffer])


def _spelled(digests: pa.Array) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``digests`` (text, each 71 bytes, no nulls) a slice of rows at a time: (the slice's
    first row; per row, it is ``sha256:`` and lower-case hex; per row, the 32 bytes its hex
    spells, a value over 0xFF where not hex). A slice at a time: each digit pair's value as 16
    bits for a whole dictionary at once was 64 bytes a digest (~45 MiB for the 700k digests of
    a store's layer links)."""
    n = len(digests)
    if not n:
        return
    offsets = np.frombuffer(digests.buffers()[1], np.int32)[digests.offset :][: n + 1]
    data = np.frombuffer(digests.buffers()[2], np.uint8, n * SHA256_TEXT_BYTES, int(offsets[0]))
    chars = data.reshape(n, SHA256_TEXT_BYTES)
    for start in range(0, n, _CHECK_ROWS):
        part = chars[start : start + _CHECK_ROWS]
        spelled = _BYTE[part[:, len(_PREFIX) :].view(np.uint16)]
        sha256 = (part[:, : len(_PREFIX)] == _PREFIX).all(axis=1) & (spelled <= 0xFF).all(axis=1)
        yield start, sha256, spelled


def is_sha256_text(digests: pa.Array) -> bool:
    """Every value of ``digests`` (text) is ``sha256:`` and 64 lower-case hex digits, none null:
    what ``as_bytes`` takes."""
    if not pa.types.is_string(digests.type) or digests.null_count:
        return False
    offsets = np.frombuffer(digests.buffers()[1], np.int32)[digests.offset :][: len(digests) + 1]
    return not (np.diff(offsets) != SHA256_TEXT_BYTES).any() and bool(_each_sha256(digests).all())


def bytes_or_null(digests: pa.Array) -> pa.Array:
    """``digests`` (text, nulls allowed) as ``as_bytes`` spells them, null where a value is
    not a sha256 digest in lower-case hex (it cannot be among digests held as bytes)."""
    if digests.type == SHA256_BYTES:
        return digests
    if is_sha256_text(digests):
        return as_bytes(digests)
    n = len(digests)
    if not pa.types.is_string(digests.type):  # (all null, say)
        return pa.nulls(n, SHA256_BYTES)
    fit = (
        pc.fill_null(pc.binary_length(digests), 0).to_numpy(zero_copy_only=False)
        == SHA256_TEXT_BYTES
    )
    fit[fit] = _each_sha256(digests.filter(pa.array(fit)))
    out = np.zeros((n, 32), np.uint8)
    if fit.any():
        good = as_bytes(digests.filter(pa.array(fit)))
        out[fit] = np.frombuffer(good.buffers()[1], np.uint8, len(good) * 32).reshape(-1, 32)
    return pa.Array.from_buffers(
        SHA256_BYTES, n, [pa.array(fit).buffers()[1], pa.py_buffer(out)], int(n - fit.sum())
    )


def _each_sha256(digests: pa.Array) -> np.ndarray:
    """Per value of ``digests`` (text, each 71 bytes, no nulls): it is a sha256 digest."""
    out = np.zeros(len(digests), bool)
    for start, sha256, _ in _spelled(digests):
        out[start : start + len(sha256)] = sha256
    return out


def text_of(digests: pa.Array) -> pa.Array:
    """``digests`` as text: 32-byte digests (nulls allowed) spelled as ``as_text`` does; text
    as it is."""
    if digests.type != SHA256_BYTES:
        return digests
    if not digests.null_count:
        return as_text(digests)
    valid = pc.is_valid(digests)
    spelled = as_text(pc.fill_null(digests, pa.scalar(bytes(32), SHA256_BYTES)))
    return pc.if_else(valid, spelled, pa.scalar(None, pa.string()))


def as_text(digests: pa.Array) -> pa.Array:
    """``digests`` (32 bytes each, no nulls; ``as_bytes``) as text, ``sha256:<hex>``."""
    n = len(digests)
    if digests.type != SHA256_BYTES or digests.null_count:
        raise ValueError("sha256 digests as 32 bytes, without nulls, expected")
    if n * SHA256_TEXT_BYTES >= 2**31:
        raise ValueError("too many digests for one string array")
    spelled = np.frombuffer(digests.buffers()[1], np.uint8, n * 32, digests.offset * 32)
    spelled = spelled.reshape(n, 32)
    chars = np.empty((n, SHA256_TEXT_BYTES), np.uint8)
    chars[:, : len(_PREFIX)] = _PREFIX
    # A slice at a time: each byte's two digits for every digest at once were 64 bytes a
    # digest besides the text (~16 MiB for a store's 256k manifests).
    for start in range(0, n, _CHECK_ROWS):
        stop = start + _CHECK_ROWS
        chars[start:stop, len(_PREFIX) :] = _DIGITS[spelled[start:stop]].view(np.uint8)
    offsets = np.arange(0, (n + 1) * SHA256_TEXT_BYTES, SHA256_TEXT_BYTES, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(chars)])


def dictionary_as_text(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """``col`` with each dictionary chunk over 32-byte digests over their text instead (the
    indices as they are); other chunks, and a column of another type, as they are."""
    if not pa.types.is_dictionary(col.type) or col.type.value_type != SHA256_BYTES:
        return col
    type_ = pa.dictionary(col.type.index_type, pa.string())
    chunks = [pa.DictionaryArray.from_arrays(c.indices, as_text(c.dictionary)) for c in col.chunks]
    return pa.chunked_array(chunks, type_)
