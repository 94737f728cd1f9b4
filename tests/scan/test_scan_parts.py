"""The scan's per-kind parts: merged sixteen at a time (fewer, larger buffers), rows in order."""

from __future__ import annotations

import pyarrow as pa

from regsweep.scan.scanner import _Parts


def test_parts_merge_sixteen_at_a_time_and_keep_the_rows_in_order() -> None:
    parts = _Parts()
    for i in range(300):
        parts.add(pa.table({"n": list(range(i * 3, i * 3 + 3))}))
    assert pa.concat_tables(parts.tables)["n"].to_pylist() == list(range(900))
    # 300 = 256 + 2 x 16 + 12: one table merged twice, two merged once, twelve as added.
    assert parts.levels == [2, 1, 1] + [0] * 12
    assert [t.num_rows for t in parts.tables] == [768, 48, 48] + [3] * 12
    assert all(t["n"].num_chunks == 1 for t in parts.tables)
