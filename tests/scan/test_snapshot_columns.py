"""The snapshot's column helpers against Arrow's own kernels on decoded values."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from regsweep.scan.snapshot import by_value, decoded


def test_by_value_equals_the_kernel_on_decoded_rows() -> None:
    """Per dictionary value, spread to the rows: the same answer as the kernel on the decoded
    strings, over chunks with different dictionaries, and null for a null row."""
    col = pa.chunked_array(
        [
            pa.array(["sha256:b", "sha256:a", None, "sha256:b"]).dictionary_encode(),
            pa.array(["sha256:c", "sha256:a"]).dictionary_encode(),
        ]
    )
    wanted = pa.array(["sha256:a", "sha256:c"])
    got = by_value(col, lambda v: pc.index_in(v, value_set=wanted))
    assert got.to_pylist() == [None, 0, None, None, 1, 0]
    assert got.to_pylist() == pc.index_in(decoded(col), value_set=wanted).to_pylist()
    member = by_value(col, lambda v: pc.is_in(v, value_set=wanted))
    assert member.to_pylist() == [False, True, None, False, True, True]


def test_by_value_of_a_plain_column_is_the_kernel() -> None:
    col = pa.chunked_array([pa.array(["x", None]), pa.array(["y"])])
    got = by_value(col, lambda v: pc.is_in(v, value_set=pa.array(["y"])))
    assert got.to_pylist() == [False, False, True]
    # The kernel's own result, as it returned it: wrapping a ChunkedArray in
    # pa.chunked_array([...]) converted it value by value (a second per million blobs).
    kernel = pc.is_in(col, value_set=pa.array(["y"]))
    assert by_value(col, lambda v: kernel) is kernel


def test_by_value_runs_the_kernel_once_over_every_distinct_dictionary() -> None:
    """Chunks that share a dictionary are computed once; the kernel sees every distinct
    dictionary in one call (a value set is built once, not once per chunk)."""
    shared = pa.array(["sha256:a", "sha256:b"]).dictionary_encode()
    other = pa.array(["sha256:c", "sha256:b"]).dictionary_encode()
    col = pa.chunked_array([shared, shared.slice(1), other, pa.array([], shared.type)])
    calls: list[int] = []

    def member(v: pa.ChunkedArray) -> pa.ChunkedArray:
        calls.append(len(v))
        return pc.is_in(v, value_set=pa.array(["sha256:b", "sha256:c"]))

    got = by_value(col, member)
    assert (
        got.to_pylist()
        == pc.is_in(decoded(col), value_set=pa.array(["sha256:b", "sha256:c"])).to_pylist()
    )
    assert got.to_pylist() == [False, True, True, True, True]
    assert calls == [4]  # a, b once (shared), c, b of the other; the empty chunk adds nothing
