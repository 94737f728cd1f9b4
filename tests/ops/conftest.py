"""Fixtures shared by the operations tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from regsweep.clock import utcnow
from regsweep.demo.generator import generate_demo
from regsweep.storage.filesystem import FilesystemStore


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    """A filesystem registry with the demo content, written now."""
    root = tmp_path / "registry"
    root.mkdir()
    generate_demo(FilesystemStore(root), now=utcnow())
    return root
