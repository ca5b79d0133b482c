"""The root-only data folder is named once, in faceunlock.paths, and the PAM helper, the
``system`` verbs and the system template store all use it."""

from __future__ import annotations

from pathlib import Path

from faceunlock import paths
from faceunlock.engine.templates import SystemTemplateStore
from faceunlock.unlock import pam_helper, system


def test_one_system_data_dir() -> None:
    d = paths.system_data_dir()
    assert d == Path("/var/lib/faceunlock")
    assert d == pam_helper.DEFAULT_SYSTEM_DIR
    assert pam_helper.Options().system_dir == d
    assert Path(system.SYSTEM_DIR) == d
    assert Path(system.MANIFEST).parent == d
    assert SystemTemplateStore().directory == d
