"""Processes as /proc shows them: for the tests that kill commands and look for orphans."""

from __future__ import annotations

from pathlib import Path


def stat(pid: int) -> tuple[str, int] | None:
    """Return (state, parent pid) of a process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def children(pid: int) -> list[int]:
    """Return the pids of ``pid``'s child processes."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            st = stat(int(d.name))
            if st is not None and st[1] == pid:
                out.append(int(d.name))
    return out


def alive(pid: int) -> bool:
    """Tell whether ``pid`` runs (neither gone nor a zombie)."""
    st = stat(pid)
    return st is not None and st[0] not in ("Z", "X")
