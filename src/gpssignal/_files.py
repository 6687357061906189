"""Small file-system helpers shared by the readers and writers of every layer."""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["FileRefusedError", "ordinary_permissions", "read_regular_bytes"]


class FileRefusedError(ValueError):
    """A path that is not a regular file, or a file above the size limit (the reason)."""


def read_regular_bytes(path: str | Path, max_bytes: int) -> bytes:
    """Return the bytes of a regular file of at most ``max_bytes`` [bytes].

    A device (``/dev/zero``), a FIFO or a folder is refused before a byte is
    read, and at most ``max_bytes + 1`` bytes are ever read, so a wrong path
    can neither hang the reader nor exhaust the memory. :class:`FileRefusedError`
    says why (the caller names the field and the value); ``OSError`` (no
    such file, permission) passes through.
    """
    st = os.stat(path)
    if stat.S_ISDIR(st.st_mode):
        raise FileRefusedError("is a folder")
    if not stat.S_ISREG(st.st_mode):
        raise FileRefusedError("not a regular file (a device or FIFO cannot be read)")
    if st.st_size > max_bytes:
        raise FileRefusedError(f"{st.st_size:,} bytes, above the limit of {max_bytes:,} bytes")
    with open(path, "rb") as fh:
        raw = fh.read(max_bytes + 1)
    if len(raw) > max_bytes:  # grew since the stat
        raise FileRefusedError(f"more than {max_bytes:,} bytes, above the limit")
    return raw


def ordinary_permissions(path: str | Path, directory: bool = False) -> None:
    """Give a file made by ``tempfile`` the mode of an ordinary file.

    ``tempfile`` makes files 0600 and folders 0700; this sets the mode a normal
    ``open`` or ``mkdir`` would have had under the current umask.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if directory else 0o666) & ~umask)
