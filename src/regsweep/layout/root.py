"""Finding the ``docker/registry/v2/`` root inside a store (storage-layout.md §1.1, §2.3, §9.1)."""

from __future__ import annotations

from regsweep.errors import LayoutError, StoreError
from regsweep.storage.base import ObjectStore

V2 = "docker/registry/v2/"
# Distribution 2.x on Azure used the driver path verbatim as the blob name, leading "/" included.
V2_LEADING_SLASH = "/" + V2


def _has_children(store: ObjectStore, prefix: str) -> bool:
    try:
        return next(iter(store.iter_subdirs(prefix)), None) is not None
    except StoreError as e:
        if prefix.startswith("/") and "invalid key" in str(e):
            return False  # a backend whose keys cannot start with "/" (filesystem, S3 via boto)
        raise


def find_layout_root(store: ObjectStore, prefer: str | None = None) -> str:
    """Return the key prefix of the v2 root (``docker/registry/v2/`` or ``/docker/registry/v2/``).

    Raises LayoutError (exit 2) when there is none, with a hint when STORE points one level off,
    and when both naming styles hold data and ``prefer`` does not pick one.
    """
    if prefer is not None:
        root = prefer if prefer.endswith("/") else prefer + "/"
        if not _has_children(store, root):
            raise LayoutError(f"{store.url}: nothing under {root}")
        return root
    found = [p for p in (V2, V2_LEADING_SLASH) if _has_children(store, p)]
    if len(found) == 1:
        return found[0]
    if len(found) == 2:
        raise LayoutError(
            f"{store.url}: holds both {V2} and {V2_LEADING_SLASH} (Distribution 3 and 2 blob "
            "names); pick one with --layout-root"
        )
    hint = ""
    names = {d.rstrip("/").rsplit("/", 1)[-1] for d in store.iter_subdirs("")}
    if names & {"blobs", "repositories"}:
        hint = "; STORE looks like the v2 directory itself: point it at the directory that holds docker/"
    elif "registry" in names:
        hint = "; STORE looks like the docker/ directory: point it at its parent"
    elif "v2" in names:
        hint = "; STORE looks like docker/registry/: point it at the directory that holds docker/"
    raise LayoutError(
        f"{store.url}: no docker/registry/v2/ here{hint} (STORE is the registry's rootdirectory)"
    )
