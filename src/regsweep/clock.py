"""The only module that reads the wall clock, so tests can pass a fixed ``now`` everywhere else."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)
