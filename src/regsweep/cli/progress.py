"""Turn the library's progress callbacks into tqdm bars (only when stderr is a terminal)."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tqdm import tqdm

PHASE_LABELS = {
    "list": "listing shards",
    "links": "reading links",
    "manifests": "reading manifests",
    "uploads": "reading uploads",
}


class TqdmProgress:
    """A ``Progress`` callable: ``progress(phase, advance, total)``. A call with a total opens
    (or resets) the phase's bar; later calls advance it."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bars: dict[str, tqdm] = {}

    def __call__(self, phase: str, advance: int, total: int | None) -> None:
        if not self.enabled:
            return
        bar = self.bars.get(phase)
        if total is not None:
            if bar is not None:
                bar.close()
            from tqdm import tqdm  # only when a bar is shown (a terminal), not to start

            bar = tqdm(total=total, desc=PHASE_LABELS.get(phase, phase), unit="", leave=False)
            self.bars[phase] = bar
        if bar is not None and advance:
            bar.update(advance)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()

    def __enter__(self) -> TqdmProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
