"""The root side of ``faceunlock system-copy --stdin``, run for real as root: the payload the
user's side pipes in becomes /var/lib/faceunlock/<user>.tpl (here a temp folder standing in
for it), private to root and re-encrypted with the root-only key; a payload for another user,
or a caller asking for someone else's template, writes nothing."""

from __future__ import annotations

import io
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from faceunlock import paths
from faceunlock.cli import main
from faceunlock.engine.templates import (
    Anchor,
    StaticKeyProvider,
    SystemTemplateStore,
    Template,
    TemplateStore,
)
from faceunlock.errors import AuthStatus, InputError, TemplateCorruptError
from faceunlock.unlock import system_copy

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the root side needs root")

NOBODY = 65534  # a real uid that is not root (its name comes from /etc/passwd)


def _template(user: str) -> Template:
    rng = np.random.default_rng(3)
    t = Template(user=user, model_sha256="b" * 64, threshold=0.5)
    for _ in range(3):
        e = rng.normal(size=128).astype(np.float32)
        t.add_anchor(Anchor.new(e / np.linalg.norm(e), np.zeros((64, 64, 3), np.uint8)))
    return t


@pytest.fixture()
def system_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """/var/lib/faceunlock, moved into tmp_path (there is no environment override, on
    purpose: tests move the constant); nobody elevated (no PKEXEC_UID/SUDO_UID)."""
    d = tmp_path / "var-lib-faceunlock"
    monkeypatch.setattr(paths, "SYSTEM_DATA_DIR", d)
    monkeypatch.delenv("PKEXEC_UID", raising=False)
    monkeypatch.delenv("SUDO_UID", raising=False)
    return d


def _stdin(monkeypatch: pytest.MonkeyPatch, payload: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(payload)))


def test_root_side_writes_a_private_reencrypted_copy(
    system_dir: Path, store: TemplateStore, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    t = _template("alice")
    store.save(t)
    _stdin(monkeypatch, store.load("alice").to_payload())
    assert main(["system-copy", "--user", "alice", "--stdin"]) == 0
    tpl = system_dir / "alice.tpl"
    assert capsys.readouterr().out == f"system copy written: {tpl}\n"
    key = system_dir / "keys" / "alice.key"
    for p, mode in ((tpl, 0o600), (system_dir, 0o700), (key, 0o600), (key.parent, 0o700)):
        st = p.stat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid) == (mode, 0), p
    copy = SystemTemplateStore(system_dir).load("alice")
    assert [a.id for a in copy.anchors] == [a.id for a in t.anchors]
    np.testing.assert_array_equal(copy.embeddings(), t.embeddings())
    # the system key, not the user's: the user's store cannot open the copy
    with pytest.raises(TemplateCorruptError):
        TemplateStore(system_dir, StaticKeyProvider(os.urandom(32))).load("alice")
    # again: the previous copy is kept as the backup
    _stdin(monkeypatch, store.load("alice").to_payload())
    assert main(["system-copy", "--user", "alice", "--stdin"]) == 0
    assert SystemTemplateStore(system_dir).backup_path("alice").is_file()


def test_a_payload_of_another_user_writes_nothing(
    system_dir: Path, store: TemplateStore, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store.save(_template("alice"))
    _stdin(monkeypatch, store.load("alice").to_payload())
    assert main(["system-copy", "--user", "bob", "--stdin"]) == AuthStatus.BAD_INPUT
    assert "belongs to 'alice', not 'bob'" in capsys.readouterr().err
    assert not (system_dir / "bob.tpl").exists() and not (system_dir / "alice.tpl").exists()


def test_a_caller_may_install_only_their_own_template(
    system_dir: Path, store: TemplateStore, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import pwd

    nobody = pwd.getpwuid(NOBODY).pw_name
    store.save(_template("alice"))
    _stdin(monkeypatch, store.load("alice").to_payload())
    monkeypatch.setenv("PKEXEC_UID", str(NOBODY))
    assert main(["system-copy", "--user", "alice", "--stdin"]) == AuthStatus.BAD_INPUT
    assert f"{nobody} may only install their own template, not alice's" in (
        capsys.readouterr().err)
    assert not system_dir.exists()
    # sudo's variable counts the same; the caller's own name passes the check
    monkeypatch.delenv("PKEXEC_UID")
    with pytest.raises(InputError, match="may only install their own"):
        system_copy.check_caller("alice", {"SUDO_UID": str(NOBODY)})
    system_copy.check_caller(nobody, {"SUDO_UID": str(NOBODY)})
    system_copy.check_caller("alice", {"SUDO_UID": "0"})


def test_root_without_stdin_is_told_to_run_it_as_the_user(
    system_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["system-copy", "--user", "alice"]) == AuthStatus.BAD_INPUT
    assert "run `faceunlock system-copy` as the user" in capsys.readouterr().err
    assert not system_dir.exists()


def test_install_from_a_given_system_store(tmp_path: Path, store: TemplateStore) -> None:
    """The function under the verb, with an explicit system store."""
    store.save(_template("carol"))
    target = SystemTemplateStore(tmp_path / "sys")
    p = system_copy.install_from(
        "carol", io.BytesIO(store.load("carol").to_payload()), {}, system_store=target
    )
    assert p == tmp_path / "sys" / "carol.tpl"
    assert target.load("carol").user == "carol"
