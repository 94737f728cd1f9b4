"""Logging of scheduled runs: human text by default, or one JSON object a line for collectors.

Library code logs through ``logging.getLogger("regsweep....")`` with ``extra={"phase": ...,
"counts": {...}}``; ``setup_logging`` attaches one handler to the ``regsweep`` logger that adds
the run id and formats each record. A JSON line holds ``timestamp`` (UTC, ISO 8601), ``level``,
``run_id``, ``phase``, ``message`` and ``counts`` (an object; empty when there are none), plus
``error`` when the record carries one.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

LOGGER = "regsweep"


class _RunId(logging.Filter):
    def __init__(self, run_id: str | None) -> None:
        super().__init__()
        self.run_id = run_id

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "run_id"):
            record.run_id = self.run_id
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "run_id": getattr(record, "run_id", None),
            "phase": getattr(record, "phase", None),
            "message": record.getMessage(),
            "counts": getattr(record, "counts", None) or {},
        }
        error = getattr(record, "error", None)
        if error is not None:
            obj["error"] = str(error)
        if record.exc_info and record.exc_info[1] is not None:
            obj["error"] = " ".join(str(record.exc_info[1]).split())
        return json.dumps(obj, sort_keys=False, default=str)


class TextFormatter(logging.Formatter):
    """``2026-11-27 02:00:01Z INFO  [scan] scanned the store (blobs=12, tags=4)``."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        phase = getattr(record, "phase", None)
        counts = getattr(record, "counts", None) or {}
        text = record.getMessage()
        if counts:
            text += " (" + ", ".join(f"{k}={v}" for k, v in counts.items()) + ")"
        error = getattr(record, "error", None)
        if error is not None:
            text += f": {error}"
        return f"{when} {record.levelname:<7} {f'[{phase}] ' if phase else ''}{text}"


def setup_logging(
    fmt: str = "text", run_id: str | None = None, *, stream: IO[str] | None = None
) -> logging.Handler:
    """Send the ``regsweep`` logger's INFO and above to ``stream`` (stderr) in ``fmt`` (text or
    json), replacing a handler an earlier call installed. Returns the handler."""
    if fmt not in ("text", "json"):
        raise ValueError(f"unknown log format {fmt!r} (text or json)")
    logger = logging.getLogger(LOGGER)
    for h in list(logger.handlers):
        if getattr(h, "_regsweep", False):
            logger.removeHandler(h)
            h.close()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_RunId(run_id))
    handler._regsweep = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return handler


def teardown_logging(handler: logging.Handler) -> None:
    logger = logging.getLogger(LOGGER)
    logger.removeHandler(handler)
    handler.flush()


__all__ = ["JsonFormatter", "TextFormatter", "setup_logging", "teardown_logging"]
