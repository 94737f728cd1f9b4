"""The scan's per-kind parts: merged sixteen at a time (fewer, larger buffers), rows in order;
and the distinct values of its dictionary-encoded link columns."""

from __future__ import annotations

import pyarrow as pa

from regsweep.scan.scanner import _distinct, _Parts


def test_parts_merge_sixteen_at_a_time_and_keep_the_rows_in_order() -> None:
    parts = _Parts()
    for i in range(300):
        parts.add(pa.table({"n": list(range(i * 3, i * 3 + 3))}))
    assert pa.concat_tables(parts.tables)["n"].to_pylist() == list(range(900))
    # 300 = 256 + 2 x 16 + 12: one table merged twice, two merged once, twelve as added.
    assert parts.levels == [2, 1, 1] + [0] * 12
    assert [t.num_rows for t in parts.tables] == [768, 48, 48] + [3] * 12
    assert all(t["n"].num_chunks == 1 for t in parts.tables)


def test_distinct_values_are_those_the_rows_use() -> None:
    """A dictionary can hold values no row uses (a filtered column), and chunks can share one
    dictionary or have their own: the distinct values are the rows' own, each once."""
    shared = pa.array(["a", "b", "c", "unused"])
    chunks = [
        pa.DictionaryArray.from_arrays(pa.array([0, 1, None], pa.int32()), shared),
        pa.DictionaryArray.from_arrays(pa.array([1, 2], pa.int32()), shared),
        pa.array(["d", "a", None]).dictionary_encode(),
    ]
    col = pa.chunked_array(chunks)
    assert sorted(_distinct(col).to_pylist()) == ["a", "b", "c", "d"]
    plain = pa.chunked_array([pa.array(["x", None, "x", "y"])])
    assert sorted(_distinct(plain).to_pylist()) == ["x", "y"]
