"""One mutating run per store at a time (design.md invariant 9).

The lock is an object at ``regsweep/lock.json`` in the store root, outside the registry's
``docker/registry/v2/``, holding owner, host, pid, run id and expiry. A lock that has expired,
or that a dead process on this same host left behind, is taken over; any other live lock makes
the run refuse with exit 3.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from regsweep.clock import utcnow
from regsweep.errors import ObjectNotFound, SafetyRefusal, StoreError
from regsweep.storage.base import ObjectStore

LOCK_KEY = "regsweep/lock.json"
DEFAULT_TTL = timedelta(hours=6)


@dataclass(frozen=True)
class Lock:
    run_id: str
    owner: str
    host: str
    pid: int
    acquired: str
    expires: str
    service_time: str = ""  # the store's clock when the lock was written (its last-modified)

    @property
    def service_now(self) -> datetime:
        return datetime.fromisoformat(self.service_time or self.acquired)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_lock(store: ObjectStore) -> Lock | None:
    try:
        raw = store.read(LOCK_KEY, max_bytes=65536)
    except ObjectNotFound:
        return None
    try:
        d = json.loads(raw)
        return Lock(**{k: d[k] for k in Lock.__dataclass_fields__ if k in d})
    except (ValueError, TypeError, KeyError):
        return Lock("unknown", "unknown", "unknown", 0, "", "1970-01-01T00:00:00+00:00")


def acquire_lock(store: ObjectStore, run_id: str, ttl: timedelta = DEFAULT_TTL) -> Lock:
    """Take the store's lock or raise SafetyRefusal naming who holds it."""
    now = utcnow()
    held = read_lock(store)
    if held is not None and held.run_id != run_id:
        expired = datetime.fromisoformat(held.expires) <= now
        dead_here = held.host == socket.gethostname() and not _pid_alive(held.pid)
        if not (expired or dead_here):
            raise SafetyRefusal(
                f"store is locked by run {held.run_id} ({held.owner}@{held.host} pid {held.pid}) "
                f"until {held.expires}; wait for it, or delete {LOCK_KEY} if that run is gone"
            )
    lock = Lock(
        run_id=run_id,
        owner=getpass.getuser(),
        host=socket.gethostname(),
        pid=os.getpid(),
        acquired=now.isoformat(),
        expires=(now + ttl).isoformat(),
    )
    info = store.write(LOCK_KEY, json.dumps(asdict(lock)).encode())
    # Read back: if two runs raced, only one of them sees its own run id.
    back = read_lock(store)
    if back is None or back.run_id != run_id:
        raise SafetyRefusal(f"lost the race for {LOCK_KEY} to run {back.run_id if back else '?'}")
    return Lock(**{**asdict(lock), "service_time": info.last_modified.isoformat()})


def release_lock(store: ObjectStore, lock: Lock) -> None:
    held = read_lock(store)
    if held is not None and held.run_id == lock.run_id:
        with contextlib.suppress(StoreError):  # if it fails, the lock expires on its own
            store.delete_many([LOCK_KEY])
