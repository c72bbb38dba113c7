"""Who holds a lease: an owner id per process, and telling when its process is gone.

An id names the host, the pid namespace and the pid, plus a random part (pids repeat in
containers), so a replica can take over at once from a dead process on its own host and
otherwise waits for the lease to expire.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid


def _pid_namespace() -> str:
    with contextlib.suppress(OSError):
        return os.readlink("/proc/self/ns/pid")
    return "?"


def make_owner() -> str:
    """A lease owner id: host, pid namespace and pid (to spot dead local owners), plus a nonce."""
    return f"{socket.gethostname()}|{_pid_namespace()}|{os.getpid()}|{uuid.uuid4().hex[:12]}"


def owner_is_dead(owner: str, *, me: str) -> bool:
    """True only when `owner` was a process of this host and pid namespace that is gone."""
    parts = owner.split("|")
    if len(parts) != 4 or owner == me:
        return False
    host, namespace, pid_text, _ = parts
    if host != socket.gethostname() or namespace != _pid_namespace() or namespace == "?":
        return False
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    if pid == os.getpid():
        return True  # our pid, another owner id: that process was us before a restart
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
