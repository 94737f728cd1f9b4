"""Times of candidates, with where each came from (retention-policy.md §4, §6.2 time_sources).

A Distribution store keeps no push time, so ``pushed`` is the first of, in the configured order:

- ``tag_link_mtime``: the tag's ``current/link`` mtime, rewritten on every push of the tag
  (for an artifact with several tags, the newest of them; untagged manifests have none);
- ``revision_link_mtime``: the manifest's revision link in the repository, rewritten on every
  put of that manifest;
- ``config_created``: the image config's ``created`` (build time, not push time; an index or an
  artifact with an empty config has none).

``event_log`` is accepted in the settings for files shared with tools that have one, and yields
nothing here. ``created`` is ``config_created`` or ``annotation_created`` (the manifest's
``org.opencontainers.image.created`` annotation, else the config's label of that name). Offline
storage has no pull data, so ``pulled`` is unknown unless ``pulled_fallback: pushed``.

A time that cannot be found is None: never "old", never ranked. Config and manifest blobs are
read lazily, through the ObjectStore, with a size cap, once per digest.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from regsweep.errors import StoreError
from regsweep.retention.schema import Settings
from regsweep.scan.graph import kind_is, pylist
from regsweep.scan.snapshot import Snapshot, by_value, column, decoded
from regsweep.storage.base import ObjectStore

MAX_CONFIG_BYTES = 4 * 1024 * 1024
CREATED_ANNOTATION = "org.opencontainers.image.created"


@dataclass(frozen=True, slots=True)
class Stamp:
    """A time and the source that gave it; ``value`` None means unknown."""

    value: datetime | None
    source: str | None = None


UNKNOWN = Stamp(None, None)


def parse_rfc3339(text: Any) -> datetime | None:
    """An RFC 3339 time as UTC, or None. Go writes nanoseconds (``.123456789Z``): truncated."""
    if not isinstance(text, str) or not text:
        return None
    s = text.strip().replace("z", "Z")
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    if "." in s:
        head, _, tail = s.partition(".")
        digits = "".join(ch for ch in tail if ch.isdigit())
        zone = tail[len(digits) :]
        s = f"{head}.{digits[:6].ljust(6, '0')}{zone}" if digits else head + zone
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    if dt.year < 1980:  # 1970 epoch or zero times from reproducible builds mean "unknown"
        return None
    return dt.astimezone(UTC)


def _dated(doc: dict[str, Any]) -> dict[str, Any]:
    """The parts of a config or manifest document the times read: ``created``, and the
    created annotation and label. A whole config (history, rootfs, environment) held for every
    manifest was ~2 KB each: most of a policy's memory when its times come from configs."""
    out: dict[str, Any] = {}
    if "created" in doc:
        out["created"] = doc["created"]
    ann = doc.get("annotations")
    if isinstance(ann, dict) and CREATED_ANNOTATION in ann:
        out["annotations"] = {CREATED_ANNOTATION: ann[CREATED_ANNOTATION]}
    inner = doc.get("config")
    labels = inner.get("Labels") if isinstance(inner, dict) else None
    if isinstance(labels, dict) and CREATED_ANNOTATION in labels:
        out["config"] = {"Labels": {CREATED_ANNOTATION: labels[CREATED_ANNOTATION]}}
    return out


class BlobReader:
    """Reads config and manifest JSON blobs of a snapshot through the store, capped, and
    caches the parts the times read (``_dated``). A blob that is missing, too large,
    unreadable or not JSON reads as None."""

    def __init__(self, snap: Snapshot, store: ObjectStore | None, cap: int = MAX_CONFIG_BYTES):
        self.snap = snap
        self.store = store
        self.cap = cap
        # Built on the first read: a policy whose times come from links reads no blob, and
        # these were ~130 MiB of a policy run at 1M objects (when keyed by every named blob).
        self._keys: dict[str, str] | None = None
        self._configs: dict[str, str] | None = None
        self._cache: dict[str, dict[str, Any] | None] = {}
        self.reads = 0
        self.errors: list[str] = []

    @property
    def configs(self) -> dict[str, str]:
        """The config digest of each manifest that has one."""
        if self._configs is None:
            r = self.snap["references"]
            r = r.filter(kind_is(r, "config"))
            shared: dict[tuple[int, ...], list[Any]] = {}
            self._configs = dict(
                zip(pylist(r["parent"], shared), pylist(r["child"], shared), strict=True)
            )
        return self._configs

    @property
    def keys(self) -> dict[str, str]:
        """The keys of the blobs that can be read here (manifests and their configs), a part of
        the blobs at a time; not a Python string per blob of the store."""
        if self._keys is None:
            m = self.snap["manifests"]["digest"]
            wanted = pc.unique(
                pa.chunked_array(
                    [*decoded(m).chunks, pa.array(list(self.configs.values()), pa.string())],
                    pa.string(),
                )
            )
            self._keys = {}
            for part in self.snap.parts("blobs", ("digest", "key")):
                mine = part.filter(by_value(part["digest"], partial(pc.is_in, value_set=wanted)))
                b = self.snap.with_keys("blobs", mine)
                self._keys.update(zip(column(b, "digest"), column(b, "key"), strict=True))
        return self._keys

    def json(self, digest: str) -> dict[str, Any] | None:
        if digest in self._cache:
            return self._cache[digest]
        doc: dict[str, Any] | None = None
        key = self.keys.get(digest)
        if key is not None and self.store is not None:
            try:
                self.reads += 1
                data = self.store.read(key, max_bytes=self.cap)
                parsed = json.loads(data)
                doc = _dated(parsed) if isinstance(parsed, dict) else None
            except (StoreError, ValueError, UnicodeDecodeError) as e:
                self.errors.append(f"{digest}: {e}")
                doc = None
        self._cache[digest] = doc
        return doc

    def config_of(self, manifest: str) -> dict[str, Any] | None:
        cfg = self.configs.get(manifest)
        return self.json(cfg) if cfg is not None else None


class TimeResolver:
    """``pushed``/``created``/``pulled``/``active`` of candidates, per the policy's settings."""

    def __init__(self, snap: Snapshot, reader: BlobReader, settings: Settings) -> None:
        self.settings = settings
        self.reader = reader
        t = snap["tags"]
        self.tag_mtime: dict[tuple[str, str], datetime] = {}
        for repo, tag, mtime in zip(
            column(t, "repository"), column(t, "tag"), column(t, "last_modified"), strict=True
        ):
            if mtime is not None:
                self.tag_mtime[(repo, tag)] = mtime
        rv = snap["revisions"]
        self.rev_mtime: dict[tuple[str, str], datetime] = {}
        for repo, d, target, mtime in zip(
            column(rv, "repository"),
            column(rv, "digest"),
            column(rv, "target"),
            column(rv, "last_modified"),
            strict=True,
        ):
            if mtime is None:
                continue
            for x in {d, target} - {None}:
                key = (repo, x)
                if key not in self.rev_mtime or mtime > self.rev_mtime[key]:
                    self.rev_mtime[key] = mtime
        self._created: dict[tuple[str, str], Stamp] = {}

    def config_created(self, digest: str) -> datetime | None:
        cfg = self.reader.config_of(digest)
        return parse_rfc3339(cfg.get("created")) if cfg else None

    def annotation_created(self, digest: str) -> datetime | None:
        doc = self.reader.json(digest)
        ann = doc.get("annotations") if doc else None
        if isinstance(ann, dict) and (t := parse_rfc3339(ann.get(CREATED_ANNOTATION))):
            return t
        cfg = self.reader.config_of(digest)
        inner = cfg.get("config") if cfg else None
        labels = inner.get("Labels") if isinstance(inner, dict) else None
        if isinstance(labels, dict):
            return parse_rfc3339(labels.get(CREATED_ANNOTATION))
        return None

    def pushed(self, repo: str, digest: str, tags: Iterable[str]) -> Stamp:
        for source in self.settings.time_sources.pushed:
            value: datetime | None = None
            if source == "tag_link_mtime":
                times = [self.tag_mtime[(repo, t)] for t in tags if (repo, t) in self.tag_mtime]
                value = max(times) if times else None
            elif source == "revision_link_mtime":
                value = self.rev_mtime.get((repo, digest))
            elif source == "config_created":
                value = self.config_created(digest)
            if value is not None:
                return Stamp(value, source)
        return UNKNOWN

    def created(self, repo: str, digest: str) -> Stamp:
        key = (repo, digest)
        if key not in self._created:
            out = UNKNOWN
            for source in self.settings.time_sources.created:
                value = (
                    self.config_created(digest)
                    if source == "config_created"
                    else self.annotation_created(digest)
                )
                if value is not None:
                    out = Stamp(value, source)
                    break
            self._created[key] = out
        return self._created[key]

    def pulled(self, pushed: Stamp) -> Stamp:
        # No pull records offline (event_log is not read): only the fallback can answer.
        if self.settings.pulled_fallback == "pushed" and pushed.value is not None:
            return Stamp(pushed.value, f"pushed:{pushed.source}")
        return UNKNOWN

    def active(self, pushed: Stamp) -> Stamp:
        pulled = self.pulled(pushed)
        known = [s for s in (pushed, pulled) if s.value is not None]
        if not known:
            return UNKNOWN
        return max(known, key=lambda s: s.value)  # type: ignore[arg-type,return-value]
