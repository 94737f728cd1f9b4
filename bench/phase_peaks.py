"""Peak RSS of each phase of a regsweep command, from the kernel's high-water mark.

    python bench/phase_peaks.py gc STORE --grace 0s --json

runs the command in this process and prints, for each phase below (or those named by
``--phases module:qualname,...`` before the command), the highest RSS while it ran, in KB,
highest first, then the whole run's. Linux only: writing 5 to /proc/self/clear_refs resets
VmHWM, so each phase starts from the RSS it finds and its high-water mark is its own. Unlike
a sampling thread, it sees the spikes inside calls that hold the GIL (numpy, Arrow), and it
costs nothing between phases. A phase called several times reports its highest call.

A phase must not be a function that frees what it is given (``_take``: its wrapper would
hold the argument), and wrapping a name only reaches the callers that look it up in its
module or class when they call.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable
from typing import Any

PHASES = (
    "regsweep.scan.scanner:_Scan.classify",  # the listing, a batch at a time
    "regsweep.scan.scanner:_sorted_parsed",  # the listing's end
    "regsweep.scan.scanner:_Scan.gather",
    "regsweep.scan.scanner:_Scan.resolve_links",
    "regsweep.scan.scanner:_Scan.read_manifests",
    "regsweep.scan.scanner:_Scan.link_table",
    "regsweep.scan.scanner:_Scan.manifest_tables",
    "regsweep.scan.scanner:_by_parent",
    "regsweep.scan.scanner:spill_shared",
    "regsweep.scan.graph:Graph.from_snapshot",
    "regsweep.gc.plan:make_plan",
)


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


class Peaks:
    """The high-water mark of each wrapped phase; phases may nest (an outer phase's peak
    includes its inner ones')."""

    def __init__(self) -> None:
        self.open: list[int] = [0]  # per open phase (the run first): its highest RSS so far
        self.peaks: dict[str, int] = {}

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            self.open[-1] = max(self.open[-1], _status("VmHWM"))
            _reset()
            self.open.append(_status("VmRSS"))
            try:
                return fn(*args, **kwargs)
            finally:
                peak = max(self.open.pop(), _status("VmHWM"))
                self.peaks[name] = max(self.peaks.get(name, 0), peak)
                self.open[-1] = max(self.open[-1], peak)
                _reset()

        return run

    def install(self, spec: str) -> None:
        module, _, path = spec.partition(":")
        owner: Any = importlib.import_module(module)
        *outer, name = path.split(".")
        for part in outer:
            owner = getattr(owner, part)
        setattr(owner, name, self.wrap(path, getattr(owner, name)))

    def total(self) -> int:
        return max(self.open[0], _status("VmHWM"))


def main(argv: list[str]) -> int:
    phases = PHASES
    if argv[:1] == ["--phases"]:
        phases, argv = tuple(argv[1].split(",")), argv[2:]
    from regsweep.cli.main import cli  # (first: it sets the allocators' environment)

    peaks = Peaks()
    for spec in phases:
        peaks.install(spec)
    code = 0
    try:
        cli.main(argv, standalone_mode=False)
    except SystemExit as e:  # (click's exit, for a command's exit status)
        code = e.code if isinstance(e.code, int) else 1
    for name, peak in sorted(peaks.peaks.items(), key=lambda kv: -kv[1]):
        print(f"{peak:>10} KB  {name}", file=sys.stderr)
    print(f"{peaks.total():>10} KB  (the whole run)", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
