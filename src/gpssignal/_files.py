"""Small file-system helper shared by the writers of every layer."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ordinary_permissions"]


def ordinary_permissions(path: str | Path, directory: bool = False) -> None:
    """Give a file made by ``tempfile`` the mode of an ordinary file.

    ``tempfile`` makes files 0600 and folders 0700; this sets the mode a normal
    ``open`` or ``mkdir`` would have had under the current umask.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if directory else 0o666) & ~umask)
