"""What the machine's hardware says about a face attempt, read from /proc and /sys.

Shared by the PAM helper (:mod:`faceunlock.unlock.pam_helper`, which skips the camera when the
lid is closed) and the lock-screen watcher (:mod:`faceunlock.unlock.lockstate`), so neither has
to import the other. Every answer is None on doubt: an unreadable file never blocks an unlock.
"""

from __future__ import annotations

import glob

#: the ACPI lid state files (``state: open`` or ``state: closed``)
DEFAULT_LID_GLOB = "/proc/acpi/button/lid/*/state"


def lid_closed(pattern: str = DEFAULT_LID_GLOB) -> str | None:
    """The lid state file that says ``closed``, or None (no lid, open, unreadable)."""
    for path in sorted(glob.glob(pattern)):
        try:
            with open(path, encoding="ascii", errors="replace") as f:
                text = f.read(256)
        except OSError:
            continue
        if "closed" in text.lower():
            return path
    return None
