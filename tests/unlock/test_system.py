"""`faceunlock system enable|disable|status` on a fake root (pam-auth-update is never run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faceunlock.cli import main
from faceunlock.errors import InputError, RootRequiredError
from faceunlock.unlock import system


def _fake_root(tmp_path: Path, *, debian: bool = True, installed: bool = True) -> Path:
    r = tmp_path / "root"
    (r / "etc/pam.d").mkdir(parents=True)
    (r / "etc/pam.d/common-auth").write_text("auth required pam_unix.so\n")
    if debian:
        pau = r / "usr/sbin/pam-auth-update"
        pau.parent.mkdir(parents=True)
        pau.write_text("#!/bin/sh\nexit 99\n")
        pau.chmod(0o755)
    if installed:
        helper = r / "usr/local/bin/faceunlock-auth"
        helper.parent.mkdir(parents=True)
        helper.write_text("#!/bin/sh\nexit 1\n")
        helper.chmod(0o755)
        prof = r / "usr/share/pam-configs/faceunlock"
        prof.parent.mkdir(parents=True)
        prof.write_text("Name: x\n")
        unit = r / "usr/lib/systemd/user/faceunlock-watch.service"
        unit.parent.mkdir(parents=True)
        unit.write_text("[Unit]\n")
    sysdir = r / "var/lib/faceunlock"
    sysdir.mkdir(parents=True)
    (sysdir / "alice.tpl").write_bytes(b"x")
    return r


def test_status_json_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = _fake_root(tmp_path)
    (r / "etc/pam.d/sudo").write_text(f"{system.PAM_LINE}\n")
    assert main(["system", "status", "--root", str(r), "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert set(st) == {
        "root", "helper", "profile", "pam", "templates", "user_unit", "installed_by_script"
    }
    assert st["helper"]["present"] and st["helper"]["path"] == "/usr/local/bin/faceunlock-auth"
    assert st["helper"]["mode"] == "0755"
    assert st["profile"]["present"] and st["user_unit"]["present"]
    assert st["pam"]["enabled"] is False
    assert st["pam"]["pam_auth_update"].endswith("/usr/sbin/pam-auth-update")
    assert st["pam"]["services"] == ["/etc/pam.d/sudo"]
    assert st["templates"] == [{"user": "alice", "path": "/var/lib/faceunlock/alice.tpl"}]
    assert st["installed_by_script"] is False
    (r / "etc/pam.d/common-auth").write_text(
        "auth [success=2 default=ignore] pam_exec.so quiet stdout /usr/local/bin/faceunlock-auth\n"
    )
    assert system.status(r)["pam"]["enabled"] is True
    assert main(["system", "status", "--root", str(r)]) == 0
    assert "ENABLED" in capsys.readouterr().out


def test_status_on_an_empty_root(tmp_path: Path) -> None:
    st = system.status(tmp_path)
    assert not st["helper"]["present"] and not st["profile"]["present"]
    assert st["pam"] == {
        "pam_auth_update": None, "common_auth": "/etc/pam.d/common-auth",
        "enabled": False, "services": [],
    }
    assert st["templates"] == []


def _never(cmd: object) -> int:
    raise AssertionError(f"must not run {cmd}")


@pytest.mark.parametrize("dry_run", [True, False])
def test_enable_disable_with_root_only_report(tmp_path: Path, dry_run: bool) -> None:
    r = _fake_root(tmp_path)
    plan = system.enable(r, dry_run=dry_run, runner=_never)
    assert plan.command == ["pam-auth-update", "--enable", "faceunlock"]
    assert not plan.ran
    assert "would run: pam-auth-update --enable faceunlock" in plan.messages
    plan = system.disable(r, dry_run=dry_run, runner=_never)
    assert plan.command == ["pam-auth-update", "--disable", "faceunlock"]
    assert "would run: pam-auth-update --disable faceunlock" in plan.messages
    assert (r / "etc/pam.d/common-auth").read_text() == "auth required pam_unix.so\n"


def test_cli_enable_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = _fake_root(tmp_path)
    assert main(["system", "enable", "--root", str(r), "--dry-run", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["action"] == "enable" and out["ran"] is False
    assert out["command"] == ["pam-auth-update", "--enable", "faceunlock"]


def test_enable_without_pam_auth_update_prints_lines(tmp_path: Path) -> None:
    r = _fake_root(tmp_path, debian=False)
    plan = system.enable(r, dry_run=True)
    assert plan.command is None
    assert any(system.PAM_LINE in m for m in plan.messages)
    assert any("/etc/pam.d/gdm-password" in m for m in plan.messages)
    (r / "etc/pam.d/sudo").write_text(f"{system.PAM_LINE}\n")
    plan = system.disable(r, dry_run=True)
    assert "  /etc/pam.d/sudo" in plan.messages


def test_enable_needs_the_helper(tmp_path: Path) -> None:
    r = _fake_root(tmp_path, installed=False)
    with pytest.raises(InputError, match=r"install\.sh"):
        system.enable(r, dry_run=True)


def test_enable_refuses_a_writable_helper(tmp_path: Path) -> None:
    r = _fake_root(tmp_path)
    (r / "usr/local/bin/faceunlock-auth").chmod(0o777)
    with pytest.raises(InputError, match="root-owned"):
        system.enable(r, dry_run=True)


def test_root_required(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(system.os, "geteuid", lambda: 1000)
    with pytest.raises(RootRequiredError, match="must run as root"):
        system.enable("/", runner=_never)
    with pytest.raises(RootRequiredError):
        system.disable("/", runner=_never)
    assert main(["system", "enable"]) != 0
    err = capsys.readouterr().err
    assert "`faceunlock system enable` must run as root (use pkexec or sudo)" in err


def test_cli_enable_dry_run_shows_the_change_before_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not installed yet: the dry run still shows the exact PAM line and the file it goes in
    (it refused with only the install error), then says what to do first (exit 4)."""
    r = _fake_root(tmp_path, installed=False)
    before = (r / "etc/pam.d/common-auth").read_text()
    assert main(["system", "enable", "--root", str(r), "--dry-run"]) == 4
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "dry run: nothing is changed"
    assert "edits /etc/pam.d/common-auth" in out[1]
    assert any("pam_exec.so quiet stdout /usr/local/bin/faceunlock-auth" in ln for ln in out)
    assert any(ln.startswith("enable cannot run yet: ") and "install.sh" in ln for ln in out)
    assert (r / "etc/pam.d/common-auth").read_text() == before
    # no pam-auth-update, installed: the line and the service files, exit 0
    r = _fake_root(tmp_path / "b", debian=False)
    assert main(["system", "enable", "--root", str(r), "--dry-run", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["command"] is None and res["problem"] is None and res["ran"] is False
    assert res["lines"][0] == system.PAM_LINE
