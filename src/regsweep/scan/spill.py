"""Tables too large to hold: written to scratch files a part at a time, read back by part.

The blobs of a store are most of its objects, and a plan of a store full of unreferenced blobs
has a row for most of them: at 2M objects those two were ~130 MiB of the ~360 MiB peak. A
``SpilledTable`` keeps such rows on disk as Arrow IPC streams (one file per part, written as
the rows are produced) and hands them back part by part, so that a pass over every blob holds
one part at a time. Parts are read memory-mapped: a column that is not looked at is never read,
and the pages that are stay file-backed and go once the part is let go. The references of the
manifests a scan reads while it lists are kept the same way until it builds its tables (~40 MiB
at 445k references, held through every phase of the scan before; read back twice there, see
scanner.manifest_tables), and the snapshot's references
table from then on, over the snapshot's one dictionary of digests (``shared``): only the graph,
the audit and the reports read it (37 MiB at 1.2M references, held through the plan before).

Scratch files live in a temporary directory (``TMPDIR``, else ``/tmp``) that is removed when
the table is garbage-collected or the process exits. They take up to ~250 bytes a blob (the
blobs, and a plan row for each blob that goes; 1.3 GiB for the 6M blobs of a 10M-object store),
~100 bytes a manifest reference while the scan lists, and ~32 bytes a reference after.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator, Sequence

import pyarrow as pa
import pyarrow.ipc as ipc

from regsweep.errors import RegsweepError


class ScratchError(RegsweepError):
    """The scratch directory cannot be written (full, read-only, missing)."""

    exit_code = 2


class SpilledTable:
    """Rows of ``schema`` as parts on disk, in the order they were appended.

    The dictionary columns named in ``shared`` are over the dictionary given for them (every
    chunk of every part): only their indices are written, and the rows read back are over that
    dictionary, held in memory once. The snapshot's digests are one dictionary that every
    table's digest columns index (share_digests): written with each part, it would be most of
    the file."""

    def __init__(
        self, schema: pa.Schema, what: str, shared: dict[str, pa.Array] | None = None
    ) -> None:
        self.schema = schema
        self.what = what  # names the directory, and the table in errors
        self.shared = shared or {}
        self._written = pa.schema(
            [pa.field(f.name, f.type.index_type) if f.name in self.shared else f for f in schema]
        )
        self.num_rows = 0
        self._paths: list[str] = []
        try:
            self._dir = tempfile.mkdtemp(prefix=f"regsweep-{what}-")
        except OSError as e:
            raise _scratch_error(what, tempfile.gettempdir(), e) from e
        # Removed with the table, or at exit at the latest (a finalizer runs then too).
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._dir, ignore_errors=True)

    @property
    def num_parts(self) -> int:
        return len(self._paths)

    def append(self, part: pa.Table) -> None:
        """Write ``part`` (of ``schema``) as the next part."""
        # (Here, not at the top: the snapshot module imports this one.)
        from regsweep.scan.snapshot import identity

        path = os.path.join(self._dir, f"{len(self._paths):05d}.arrows")
        part = part.cast(self.schema) if part.schema != self.schema else part
        for name, dictionary in self.shared.items():
            at = part.schema.get_field_index(name)
            chunks = part[name].chunks
            if any(identity(c.dictionary) != identity(dictionary) for c in chunks):
                raise ValueError(f"{self.what}: column {name} is not over its shared dictionary")
            indices = pa.chunked_array([c.indices for c in chunks], self._written.field(at).type)
            part = part.set_column(at, self._written.field(at), indices)
        try:
            with ipc.new_stream(path, self._written) as out:
                out.write_table(part)
        except OSError as e:
            raise _scratch_error(self.what, self._dir, e) from e
        self._paths.append(path)
        self.num_rows += part.num_rows

    def parts(
        self, columns: Sequence[str] | None = None, *, mapped: bool = True
    ) -> Iterator[pa.Table]:
        """Each part in turn (only ``columns``, when given), memory-mapped unless ``mapped``
        is false: then read into memory, for rows that are kept after the files go."""
        for path in self._paths:
            with pa.memory_map(path) if mapped else pa.OSFile(path) as source:
                table = ipc.open_stream(source).read_all()
            if columns is not None:
                table = table.select(list(columns))
            for name, dictionary in self.shared.items():
                if (at := table.schema.get_field_index(name)) >= 0:
                    over = [
                        pa.DictionaryArray.from_arrays(c, dictionary) for c in table[name].chunks
                    ]
                    field = self.schema.field(name)
                    table = table.set_column(at, field, pa.chunked_array(over, field.type))
            yield table

    def table(self) -> pa.Table:
        """Every part as one table (chunked, memory-mapped: nothing is copied)."""
        # (Not joined to an empty table: a chunk of its own, with its own empty dictionary,
        # that a take of the rows would unify with the others' dictionaries.)
        return pa.concat_tables(list(self.parts()) or [self.schema.empty_table()])

    def close(self) -> None:
        """Remove the scratch files now (the table is empty afterwards)."""
        self._cleanup()
        self._paths, self.num_rows = [], 0


def _scratch_error(what: str, where: str, e: OSError) -> ScratchError:
    return ScratchError(
        f"cannot write scratch files for the {what} under {where} ({e.strerror or e}); "
        "point TMPDIR at a directory with room for about 250 bytes a blob"
    )
