"""Storage backends behind one protocol. SDK-backed backends are imported lazily."""

from regsweep.storage.base import DeleteOutcome, IncompleteUpload, ObjectInfo, ObjectStore
from regsweep.storage.open import open_store, open_store_from_registry_config

__all__ = [
    "DeleteOutcome",
    "IncompleteUpload",
    "ObjectInfo",
    "ObjectStore",
    "open_store",
    "open_store_from_registry_config",
]
