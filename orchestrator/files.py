"""Replacing a file in one step: a temporary file beside it, renamed over it.

Whoever reads the file (miredo running the client hook, node_exporter, a restarted daemon, a
reloading miredo) sees the old content or the new, never half of either, and a failure leaves the
old file in place.  Light imports only: the client hook writes its cache with this.
"""

from __future__ import annotations

import os


def replace_file(
    path: str | os.PathLike[str], data: bytes, mode: int, owner: tuple[int, int] | None = None
) -> None:
    """Write ``data`` to ``path`` atomically with ``mode`` (whatever the umask) and, when given and
    not the writer's own, ``owner`` (uid, gid: needs CAP_CHOWN).  ``OSError`` when it cannot; the
    temporary file is removed then."""
    temporary = f"{os.fspath(path)}.{os.getpid()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
    descriptor = os.open(temporary, flags, mode)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            os.fchmod(handle.fileno(), mode)
            if owner is not None and owner != (os.geteuid(), os.getegid()):
                os.fchown(handle.fileno(), *owner)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
