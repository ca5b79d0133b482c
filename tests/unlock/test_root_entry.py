"""Root entry points other than the PAM helper run Python isolated: ``faceunlock system-copy``
elevates ``python -I -m faceunlock system-copy --stdin``, so an ``argparse.py`` in the caller's
folder (or anything on PYTHONPATH) is never imported by the root side.

The elevation program is a stand-in for ``sudo``, which keeps the current folder: it runs the
exact command it is given, as uid 65534 instead of root (so the root side stops at its own
root check instead of writing /var/lib/faceunlock). What is imported at start-up does not
depend on the uid. (The PAM helper's own entry points are tested in test_pam.py.)"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from faceunlock import cli
from faceunlock.engine.templates import Anchor, Template, TemplateStore
from faceunlock.errors import AuthStatus

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv (util-linux) to run the elevated side as another uid",
)


@pytest.fixture()
def world() -> Iterator[Path]:
    """A folder every uid can enter (pytest's tmp_path is root-only)."""
    d = Path(tempfile.mkdtemp(prefix="fu-root-entry-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_system_copy_root_side_imports_nothing_from_the_callers_folder(
    world: Path, store: TemplateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(0)
    t = Template(user="alice", model_sha256="a" * 64)
    for _ in range(3):
        e = rng.normal(size=128).astype(np.float32)
        t.add_anchor(Anchor.new(e / np.linalg.norm(e), np.zeros((64, 64, 3), np.uint8)))
    store.save(t)
    marks = world / "marks"
    marks.mkdir()
    marks.chmod(0o777)
    cwd = world / "cwd"
    cwd.mkdir(mode=0o755)
    for mod in ("argparse", "enum", "json"):
        (cwd / f"{mod}.py").write_text(
            f"open({str(marks / mod)!r}, 'w').write('imported')\nraise ImportError('planted')\n"
        )
    bin_dir = world / "bin"
    bin_dir.mkdir(mode=0o755)
    sudo = bin_dir / "sudo"
    sudo.write_text(
        "#!/bin/sh\n"
        f"echo \"$@\" >{marks}/argv\n"
        f"exec {shutil.which('setpriv')} --reuid=65534 --regid=65534 --clear-groups \"$@\"\n"
    )
    sudo.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("PYTHONPATH", str(cwd))
    monkeypatch.chdir(cwd)
    # the user's side of system-copy, as uid 1000: the template is read before the uid is
    # faked (the store refuses a template owned by another uid, and root owns this one)
    loaded = store.load("alice")
    monkeypatch.setattr(
        "faceunlock.cli.common._store", lambda: SimpleNamespace(load=lambda user: loaded)
    )
    monkeypatch.setattr(cli.os, "geteuid", lambda: 1000)
    rc = cli.main(["system-copy", "--user", "alice"])
    assert sorted(p.name for p in marks.iterdir()) == ["argv"]  # nothing planted was imported
    argv = (marks / "argv").read_text().split()
    assert argv[:3] == [sys.executable, "-I", "-m"], argv
    assert rc == AuthStatus.ERROR  # the elevated side ran and refused: not root
