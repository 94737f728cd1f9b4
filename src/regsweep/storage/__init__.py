"""Storage backends behind one protocol. SDK-backed backends are imported lazily."""

from regsweep.storage.base import DeleteOutcome, IncompleteUpload, ObjectInfo, ObjectStore

__all__ = ["DeleteOutcome", "IncompleteUpload", "ObjectInfo", "ObjectStore"]
