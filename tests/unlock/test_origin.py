"""Where a PAM request comes from (:mod:`faceunlock.unlock.origin`), against python-dbusmock's
logind on a private system bus and real processes (their /proc environment and parentage).
The PAM-level counterpart (pamtester, the installed wrapper) is in tests/unlock/test_pam.py."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from faceunlock.errors import AuthStatus
from faceunlock.unlock import origin as og
from faceunlock.unlock import pam_helper as ph
from tests.fakes import logind_mock

why = logind_mock.unavailable()
if why is not None:
    pytest.skip(why, allow_module_level=True)

NOBODY = pwd.getpwuid(65534).pw_name if 65534 in {p.pw_uid for p in pwd.getpwall()} else None


@pytest.fixture()
def logind() -> Iterator[logind_mock.Logind]:
    m = logind_mock.Logind()
    try:
        yield m
    finally:
        m.close()


@pytest.fixture()
def child() -> Iterator[subprocess.Popen[bytes]]:
    """A process of ours (its parent: this test process), with no SSH variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSH_")}
    p = subprocess.Popen(["sleep", "60"], env=env)
    try:
        yield p
    finally:
        p.kill()
        p.wait()


def _origin(pid: int, bus: str, **kw: str) -> og.Origin:
    return og.request_origin(pid, bus=bus, **kw)


def test_local_session_of_the_caller_is_local(logind: logind_mock.Logind) -> None:
    logind.add_session("c1")
    logind.map_pids({os.getpid(): "c1"})
    o = _origin(os.getpid(), logind.address, tty="/dev/pts/3", service="sudo")
    assert not o.remote, o
    assert "session c1 (type wayland" in o.reason


def test_remote_session_of_an_ancestor_is_remote(
    logind: logind_mock.Logind, child: subprocess.Popen[bytes]
) -> None:
    """The issue's case: sudo in an SSH session, PAM tty /dev/pts/7, no PAM_RHOST. The
    requesting process is not itself known to logind; its parent is in the SSH session."""
    logind.add_session("7", remote=True, kind="tty", service="sshd", remote_host="203.0.113.5")
    logind.map_pids({os.getpid(): "7"})
    o = _origin(child.pid, logind.address, tty="/dev/pts/7", service="sudo")
    assert o.remote and "is remote (host 203.0.113.5)" in o.reason, o


def test_ssh_variables_of_an_ancestor_make_it_remote(
    logind: logind_mock.Logind,
) -> None:
    """SSH_CONNECTION in the environment of the caller's parent, though logind calls the
    caller's session local (a session logind got wrong, or a process moved out of it)."""
    logind.add_session("c1")
    outer = subprocess.Popen(
        [sys.executable, "-c", "import subprocess; subprocess.run(['sleep', '60'], env={})"],
        env={"PATH": os.environ.get("PATH", ""), "SSH_CONNECTION": "203.0.113.5 5 10.0.0.1 22"},
    )
    inner = None
    try:
        inner = _wait_child(outer.pid)
        assert "SSH_CONNECTION" not in og.environment(inner)
        logind.map_pids({inner: "c1", outer.pid: "c1"})
        o = _origin(inner, logind.address, tty="/dev/pts/1")
        assert o.remote and "SSH_CONNECTION" in o.reason and str(outer.pid) in o.reason, o
    finally:
        if inner is not None:
            os.kill(inner, signal.SIGKILL)
        outer.kill()
        outer.wait()


def _wait_child(pid: int) -> int:
    import time

    for _ in range(500):
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if kids and og.comm(int(kids[0])) == "sleep":  # exec'd: its own environment now
            return int(kids[0])
        time.sleep(0.02)
    raise AssertionError(f"process {pid} started no child")


@pytest.mark.parametrize(("tty", "remote"), [("/dev/pts/7", True), ("", True),
                                             ("tty2", False), ("/dev/tty1", False),
                                             (":0", False)])
def test_without_logind_only_a_console_is_local(tty: str, remote: bool) -> None:
    missing = f"unix:path={tempfile.gettempdir()}/fu-no-such-bus.sock"
    o = _origin(os.getpid(), missing, tty=tty, service="sudo", user="alice")
    assert o.remote is remote, o


def test_a_bus_without_logind_is_doubt(logind: logind_mock.Logind) -> None:
    bare = logind_mock.fs.start_bus(logind.root / "b", "bare")
    try:
        o = _origin(os.getpid(), bare.address, tty="/dev/pts/2", service="sudo")
        assert o.remote and "did not answer" in o.reason, o
        assert not _origin(os.getpid(), bare.address, tty="tty3").remote
    finally:
        bare.close()


@pytest.mark.skipif(NOBODY is None, reason="no user with uid 65534")
def test_no_session_in_the_chain_asks_the_users_sessions(logind: logind_mock.Logind) -> None:
    """A GNOME terminal or polkit agent runs under the user's systemd manager, in no session:
    local when all the user's sessions are local, remote when one is remote or none exist."""
    assert NOBODY is not None
    kw = {"tty": "/dev/pts/4", "service": "sudo", "user": NOBODY}
    o = _origin(os.getpid(), logind.address, **kw)
    assert o.remote and "has none" in o.reason, o
    logind.add_session("c2", uid=65534, user=NOBODY)
    o = _origin(os.getpid(), logind.address, **kw)
    assert not o.remote and "(c2) are all local" in o.reason, o
    logind.add_session("9", uid=65534, user=NOBODY, remote=True, kind="tty", service="sshd")
    o = _origin(os.getpid(), logind.address, **kw)
    assert o.remote and "session 9" in o.reason, o


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a chain of root processes")
def test_display_manager_before_the_session_is_local(
    logind: logind_mock.Logind, child: subprocess.Popen[bytes]
) -> None:
    """gdm's worker authenticates before pam_systemd opens the session: it is in no session
    and every process up the chain is root's."""
    assert not _origin(child.pid, logind.address, service="gdm-password", user="alice").remote
    assert _origin(child.pid, logind.address, service="sudo", user="alice").remote


def test_decide_refuses_the_camera_for_sudo_in_ssh(
    logind: logind_mock.Logind, tmp_path: Path
) -> None:
    from faceunlock.config import save_config
    from tests.fakes.clip_material import clip_config

    logind.add_session("7", remote=True, kind="tty", service="sshd")
    logind.map_pids({os.getpid(): "7"})
    cfg = save_config(clip_config(**{"camera.source": "/dev/video99"}), tmp_path / "c.toml")
    env = {"PAM_TYPE": "auth", "PAM_USER": "alice", "PAM_SERVICE": "sudo",
           "PAM_TTY": "/dev/pts/7", "PAM_RHOST": ""}
    opts = ph.Options(config=cfg, system_dir=tmp_path / "var", system_bus=logind.address,
                      caller_pid=os.getpid())
    d = ph.decide(env, opts)
    assert d.status == AuthStatus.REMOTE and "camera not used" in d.reason, d
    logind.add_session("c1")
    logind.map_pids({os.getpid(): "c1"})
    assert ph.decide(env, opts).status == AuthStatus.NO_TEMPLATE  # local: on to the next check
