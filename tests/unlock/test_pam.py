"""The PAM helper ``faceunlock-auth``: its decision function in-process, its process behaviour
(timeouts, signals) in a subprocess, and a real PAM stack through ``pamtester`` and
``pam_exec.so`` running the wrapper that ``packaging/install.sh`` installs (into a staging
root), with python-dbusmock's logind as the system bus (root, pamtester, dbus-daemon,
python3-dbusmock and the ../shared clips needed; skipped otherwise).

The in-process and subprocess tests give the helper a PAM tty of ``tty1`` and a system bus
that does not exist: without logind a console tty is the one case the session check calls
local."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from faceunlock.config import save_config
from faceunlock.errors import AuthStatus
from faceunlock.unlock import origin as og
from faceunlock.unlock import pam_helper as ph
from faceunlock.unlock.pam_helper import Decision, Options, Request
from tests.fakes import logind_mock
from tests.fakes.clip_material import BOTH, FEMALE, MALE, clip_config, clip_frames, png_folder

VENV_SCRIPT = Path(sys.executable).parent / "faceunlock-auth"  #: pip's console script
REPO = Path(__file__).resolve().parents[2]
USER = "alice"
#: a system bus that is not there (the in-process and subprocess tests)
NO_BUS = "unix:path=/nonexistent/faceunlock-test-bus.sock"


def _cfg(tmp: Path, **overrides: str) -> Path:
    return save_config(clip_config(**{"auth.timeout": "15", **overrides}), tmp / "config.toml")


def _fake_template(system_dir: Path, user: str = USER, data: bytes = b"garbage") -> Path:
    system_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    p = system_dir / f"{user}.tpl"
    p.write_bytes(data)
    p.chmod(0o600)
    return p


def _env(**kw: str) -> dict[str, str]:
    return {"PAM_TYPE": "auth", "PAM_USER": USER, "PAM_SERVICE": "test", "PAM_TTY": "tty1", **kw}


def _opts(config: Path, system_dir: Path, **kw: object) -> Options:
    return Options(config=config, system_dir=system_dir, system_bus=NO_BUS, **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- in-process


@pytest.mark.parametrize(
    ("rhost", "service", "tty", "remote"),
    [
        ("", "gdm-password", ":0", False),
        ("localhost", "sudo", "/dev/pts/1", False),
        ("::1", "login", "tty1", False),
        (":0", "lightdm", "", False),
        ("203.0.113.7", "sudo", "", True),
        ("", "sshd", "", True),
        ("", "sudo", "ssh", True),
    ],
)
def test_remote_reason(rhost: str, service: str, tty: str, remote: bool) -> None:
    r = Request(user=USER, service=service, rhost=rhost, tty=tty, pam_type="auth")
    assert (ph.remote_reason(r) is not None) == remote


def test_lid_closed(tmp_path: Path) -> None:
    lid = tmp_path / "LID0"
    lid.mkdir()
    (lid / "state").write_text("state:      open\n")
    pattern = str(tmp_path / "*" / "state")
    assert ph.lid_closed(pattern) is None
    (lid / "state").write_text("state:      closed\n")
    assert ph.lid_closed(pattern) == str(lid / "state")
    assert ph.lid_closed(str(tmp_path / "nothing" / "*")) is None


def _decide(tmp: Path, env: dict[str, str], **cfg: str) -> Decision:
    opts = _opts(_cfg(tmp, **cfg), tmp / "var", lid_glob=str(tmp / "lid" / "*" / "state"))
    return ph.decide(env, opts)


def test_decide_cheap_paths(tmp_path: Path) -> None:
    d = _decide(tmp_path, _env(PAM_TYPE="account"))
    assert d.status == AuthStatus.USAGE and not d.show
    d = _decide(tmp_path, _env(PAM_RHOST="198.51.100.2"), **{"camera.source": "/dev/video99"})
    assert d.status == AuthStatus.REMOTE and "camera not used" in d.reason
    assert _decide(tmp_path, _env()).status == AuthStatus.NO_TEMPLATE
    assert _decide(tmp_path, _env(PAM_USER="../etc/x")).status == AuthStatus.NO_TEMPLATE
    _fake_template(tmp_path / "var")
    assert _decide(tmp_path, _env(), **{"general.disabled": "true"}).status == AuthStatus.DISABLED
    lid = tmp_path / "lid" / "LID0"
    lid.mkdir(parents=True)
    (lid / "state").write_text("state:      closed\n")
    assert _decide(tmp_path, _env()).status == AuthStatus.LID_CLOSED
    for d in (_decide(tmp_path, _env()), _decide(tmp_path, _env(PAM_TYPE="account"))):
        assert d.exit_code != 0 and not d.attempted


def test_decide_camera_and_template_errors(tmp_path: Path) -> None:
    _fake_template(tmp_path / "var")
    d = _decide(tmp_path, _env(), **{"camera.source": "/dev/video99"})
    assert d.status == AuthStatus.CAMERA_ERROR and "/dev/video99" in d.reason
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "0.png").write_bytes(b"not read: the template fails first")
    d = _decide(tmp_path, _env(), **{"camera.source": str(folder)})
    assert d.status == AuthStatus.TEMPLATE_ERROR and d.exit_code == 20, d


def test_bad_config_and_unexpected_errors_fall_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_template(tmp_path / "var")
    bad = tmp_path / "bad.toml"
    bad.write_text("[auth]\ntimeout = 'soon'\n")
    d = ph.decide(_env(), _opts(bad, tmp_path / "var"))
    assert d.status == AuthStatus.BAD_INPUT and d.exit_code != 0
    assert d.line == ph.SETUP_MESSAGE  # no attempt was made: never "not recognised"

    def boom(*a: object, **k: object) -> Decision:
        raise RuntimeError("boom")

    monkeypatch.setattr(ph, "attempt", boom)
    d = _decide(tmp_path, _env())
    assert d.status == AuthStatus.ERROR and "boom" in d.reason


@pytest.mark.skipif(os.geteuid() != 0, reason="the ownership check applies to root only")
def test_config_writable_by_others_is_refused(tmp_path: Path) -> None:
    _fake_template(tmp_path / "var")
    cfg = _cfg(tmp_path, **{"camera.source": "/dev/video99"})
    opts = _opts(cfg, tmp_path / "var")
    assert ph.decide(_env(), opts).status == AuthStatus.CAMERA_ERROR  # trusted: read
    cfg.chmod(0o666)
    d = ph.decide(_env(), opts)
    assert d.status == AuthStatus.BAD_INPUT and "writable" in d.reason
    cfg.chmod(0o644)
    os.chown(cfg, 65534, 65534)
    assert ph.decide(_env(), opts).status == AuthStatus.BAD_INPUT


def test_ok_only_counts_after_an_attempt() -> None:
    assert Decision(AuthStatus.OK, "x", attempted=True).exit_code == 0
    assert Decision(AuthStatus.OK, "x").exit_code == int(AuthStatus.ERROR)
    assert Decision(AuthStatus.NO_MATCH, "x", attempted=True).line.startswith("Face not")


def test_main_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = {**os.environ, **_env()}
    old = dict(os.environ)
    try:
        os.environ.update(env)
        args = ["--config", str(_cfg(tmp_path)), "--system-dir", str(tmp_path / "var"),
                "--system-bus", NO_BUS]
        assert ph.run(args) == AuthStatus.NO_TEMPLATE
        out, err = capsys.readouterr()
        assert out == "No face enrolled, type your password\n"
        assert err.startswith("faceunlock-auth: NO_TEMPLATE (11)") and err.count("\n") == 1
        assert ph.run([*args, "--quiet"]) == AuthStatus.NO_TEMPLATE
        assert capsys.readouterr() == ("", "")
        assert ph.run([*args, "--timeout", "0"]) == AuthStatus.USAGE
        assert ph.run(["--bogus"]) == AuthStatus.USAGE
        capsys.readouterr()
        del os.environ["PAM_USER"]  # pam_exec without a user: no attempt, say so
        assert ph.run(args) == AuthStatus.USAGE
        assert capsys.readouterr()[0] == ph.SETUP_MESSAGE + "\n"
    finally:
        os.environ.clear()
        os.environ.update(old)


# --------------------------------------------------------------------------- subprocess

_STUCK = textwrap.dedent(
    """
    import signal, sys, time
    from faceunlock.unlock import pam_helper as ph

    def stuck(*a, **k):
        if sys.argv[1] == "block":  # SIGALRM never reaches Python: only the watchdog helps
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        print("READY", file=sys.stderr, flush=True)
        time.sleep(60)

    ph.attempt = stuck
    sys.exit(ph.run(sys.argv[2:]))
    """
)


def _run_stuck(tmp: Path, mode: str, timeout: str) -> subprocess.Popen[str]:
    _fake_template(tmp / "var")
    args = ["--config", str(_cfg(tmp)), "--system-dir", str(tmp / "var"), "--timeout", timeout,
            "--system-bus", NO_BUS]
    return subprocess.Popen(
        [sys.executable, "-c", _STUCK, mode, *args],
        env={**_env(), "PATH": os.environ.get("PATH", "")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("mode", ["signal", "block"])
def test_hard_timeout(tmp_path: Path, mode: str) -> None:
    t0 = time.monotonic()
    p = _run_stuck(tmp_path, mode, "0.6")
    out, err = p.communicate(timeout=20)
    elapsed = time.monotonic() - t0
    assert p.returncode == AuthStatus.TIMEOUT, (out, err)
    assert out == "No face seen, type your password\n"
    assert elapsed < 6, elapsed
    if mode == "block":
        assert "faceunlock-auth:" not in err  # the watchdog exits without the usual epilogue


def test_sigterm_aborts(tmp_path: Path) -> None:
    p = _run_stuck(tmp_path, "signal", "30")
    assert p.stderr is not None
    assert p.stderr.readline().strip() == "READY"
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=10)
    assert p.returncode == AuthStatus.ABORTED, (out, err)
    assert out == "Face check cancelled\n"
    assert "SIGTERM" in err


def test_no_template_exits_fast_without_heavy_imports(tmp_path: Path) -> None:
    code = (
        "import sys; from faceunlock.unlock import pam_helper as ph; rc = ph.run(sys.argv[1:]); "
        "heavy = [m for m in ('cv2', 'onnxruntime', 'numpy') if m in sys.modules]; "
        "print('HEAVY', heavy); sys.exit(rc)"
    )
    args = ["--config", str(_cfg(tmp_path)), "--system-dir", str(tmp_path / "var"),
            "--system-bus", NO_BUS]
    p = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == AuthStatus.NO_TEMPLATE, p
    assert "HEAVY []" in p.stdout


# --------------------------------------------------------------------------- real PAM stack


@pytest.fixture(scope="module")
def pam_ready() -> None:
    if shutil.which("pamtester") is None:
        pytest.skip("pamtester is not installed (apt-get install pamtester)")
    if os.geteuid() != 0:
        pytest.skip("the PAM tests write /etc/pam.d and must run as root")
    why = logind_mock.unavailable()
    if why is not None:
        pytest.skip(why)
    ssh = og.ssh_reason(og.ancestors(os.getpid()))
    if ssh is not None:
        pytest.skip(f"the tests run inside an SSH session ({ssh}): the helper rightly "
                    "refuses the camera to every request from here")


@pytest.fixture(scope="module")
def installed(pam_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``/usr/local/bin/faceunlock-auth`` as ``packaging/install.sh --root`` installs it (this
    venv's interpreter), in a staging root."""
    root = tmp_path_factory.mktemp("stage")
    p = subprocess.run(
        ["bash", str(REPO / "packaging" / "install.sh"), "--root", str(root),
         "--python", sys.executable],
        capture_output=True, text=True, timeout=120,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    wrapper = root / "usr" / "local" / "bin" / "faceunlock-auth"
    st = wrapper.stat()
    assert st.st_uid == 0 and st.st_mode & 0o777 == 0o755
    return wrapper


@pytest.fixture(scope="module")
def logind(pam_ready: None) -> Iterator[logind_mock.Logind]:
    """dbusmock's logind, the helper's system bus: this test process (pamtester's parent, so
    an ancestor of every helper) is in local graphical session c1."""
    m = logind_mock.Logind()
    try:
        m.add_session("c1")
        m.map_pids({os.getpid(): "c1"})
        yield m
    finally:
        m.close()


@pytest.fixture(scope="module")
def enrolled(
    pam_ready: None, clips_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The woman enrolled (first half of her clip) into a system store; PNG folders of the
    probes. Returns paths: var (the system dir), female (second half), male (10 frames)."""
    from faceunlock.app import service
    from faceunlock.engine.sources import ImageFolderSource
    from faceunlock.engine.templates import SystemTemplateStore

    base = tmp_path_factory.mktemp("pam")

    def folder(name: str, images: list) -> Path:
        return png_folder(base / name, images)

    fem, male = clip_frames(clips_dir / FEMALE), clip_frames(clips_dir / MALE)
    half = len(fem) // 2
    cfg = clip_config(**{"enrol.anchors": "5"})
    store = SystemTemplateStore(base / "var")
    service.enrol(store, USER, cfg, ImageFolderSource(folder("enrol", fem[:half])),
                  params=service.enrol_params(cfg, guided=False))
    var = base / "var"
    assert (var / f"{USER}.tpl").stat().st_mode & 0o777 == 0o600
    assert var.stat().st_mode & 0o777 == 0o700
    assert (var / "keys" / f"{USER}.key").stat().st_mode & 0o777 == 0o600
    return {"var": var, "female": folder("female", fem[half:]), "male": folder("male", male[:10])}




class Pam:
    """Writes PAM services whose face line runs the installed wrapper against a copy of the
    enrolled system dir, and runs pamtester on them. ``pam(fallback, camera=..., user=...,
    rhost=..., tty=..., args=[...], log=None, **config)`` -> (exit code, combined output)."""

    def __init__(self, wrapper: Path, var: Path, tmp: Path, bus: str) -> None:
        self.wrapper, self.var, self.tmp, self.bus = wrapper, var, tmp, bus
        self.written: list[Path] = []

    def helper(self, camera: str | Path = "/dev/video99", args: tuple[str, ...] = (),
               config: Path | None = None, **cfg: str) -> str:
        """The helper's command line in a PAM line (the wrapper and its test options)."""
        if config is None:
            config = _cfg(self.tmp, **{"camera.source": str(camera), **cfg})
        return (f"{self.wrapper} --config {config} --system-dir {self.var} "
                f"--system-bus {self.bus} {' '.join(args)}").strip()

    def service(self, auth_lines: list[str]) -> str:
        name = f"faceunlock-test-{secrets.token_hex(4)}"
        path = Path("/etc/pam.d") / name
        path.write_text("\n".join([*auth_lines, "account required pam_permit.so", ""]))
        self.written.append(path)
        return name

    @staticmethod
    def command(name: str, user: str = USER, *, rhost: str | None = None,
                tty: str | None = None, ops: tuple[str, ...] = ("authenticate",)) -> list[str]:
        cmd = ["pamtester", "-v"]
        if rhost is not None:
            cmd += ["-I", f"rhost={rhost}"]
        if tty is not None:
            cmd += ["-I", f"tty={tty}"]
        return [*cmd, name, user, *ops]

    @staticmethod
    def pamtester(cmd: list[str]) -> tuple[int, str]:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=90)
        return p.returncode, p.stdout + p.stderr

    def __call__(
        self,
        fallback: str,
        camera: str | Path = "/dev/video99",
        *,
        user: str = USER,
        rhost: str | None = None,
        tty: str | None = None,
        args: tuple[str, ...] = (),
        log: Path | None = None,
        **cfg: str,
    ) -> tuple[int, str]:
        opts = f"quiet log={log}" if log else "quiet stdout"
        second = {
            "deny": "auth requisite pam_deny.so",
            "permit": "auth required pam_permit.so",
        }[fallback]
        helper = self.helper(camera, args, **cfg)
        name = self.service([f"auth sufficient pam_exec.so {opts} {helper}", second])
        return self.pamtester(self.command(name, user, rhost=rhost, tty=tty))

    def close(self) -> None:
        for p in self.written:
            p.unlink(missing_ok=True)


@pytest.fixture()
def pam(
    enrolled: dict[str, Path], installed: Path, logind: logind_mock.Logind, tmp_path: Path
) -> Iterator[Pam]:
    """Each test gets its own copy of the system dir (``pam.var``)."""
    var = tmp_path / "var"
    shutil.copytree(enrolled["var"], var)
    runner = Pam(installed, var, tmp_path, logind.address)
    try:
        yield runner
    finally:
        runner.close()


def _greeter_lines(out: str) -> list[str]:
    return [ln for ln in out.splitlines() if not ln.startswith("pamtester:")]


@pytest.mark.slow
def test_pam_enrolled_face_unlocks(pam: Pam, enrolled: dict[str, Path]) -> None:
    rc, out = pam("deny", enrolled["female"])
    assert rc == 0, out
    assert _greeter_lines(out) == ["Face recognised"], out  # stderr did not leak to the greeter
    assert "successfully authenticated" in out


@pytest.mark.slow
def test_pam_impostor_is_refused_and_password_still_works(
    pam: Pam, enrolled: dict[str, Path]
) -> None:
    rc, out = pam("deny", enrolled["male"])
    assert rc != 0, out
    assert _greeter_lines(out) == ["Face not recognised, type your password"], out
    rc, out = pam("permit", enrolled["male"])
    assert rc == 0, out
    assert "Face not recognised" in out


def test_pam_no_template_falls_through(pam: Pam, enrolled: dict[str, Path]) -> None:
    rc, out = pam("deny", enrolled["female"], user="bob")
    assert rc != 0 and "No face enrolled" in out, out
    rc, out = pam("permit", enrolled["female"], user="bob")
    assert rc == 0 and "No face enrolled" in out, out


def test_pam_remote_session_never_opens_the_camera(pam: Pam, tmp_path: Path) -> None:
    log = tmp_path / "helper.log"
    t0 = time.monotonic()
    rc, out = pam("deny", "/dev/video99", rhost="203.0.113.9", log=log)
    assert rc != 0, out
    text = log.read_text()
    assert "faceunlock-auth: REMOTE (15)" in text and "camera not used" in text, text
    assert "CAMERA_ERROR" not in text
    assert time.monotonic() - t0 < 5
    rc, out = pam("permit", "/dev/video99", rhost="203.0.113.9")
    assert rc == 0 and "remote sessions" in out, out
    rc, out = pam("deny", "/dev/video99", rhost="localhost")  # local: the camera is tried
    assert rc != 0 and "Camera unavailable" in out, out


def test_pam_missing_camera_falls_through(pam: Pam) -> None:
    rc, out = pam("deny", "/dev/video99")
    assert rc != 0 and "Camera unavailable" in out, out
    rc, out = pam("permit", "/dev/video99")
    assert rc == 0, out


@pytest.mark.slow
def test_pam_helper_timeout_falls_through(pam: Pam, enrolled: dict[str, Path]) -> None:
    rc, out = pam("deny", enrolled["female"], args=("--timeout", "0.2"))
    assert rc != 0 and "No face seen" in out, out
    rc, out = pam("permit", enrolled["female"], args=("--timeout", "0.2"))
    assert rc == 0, out


@pytest.mark.slow
def test_pam_corrupt_template_falls_through(
    pam: Pam, enrolled: dict[str, Path], tmp_path: Path
) -> None:
    tpl = tmp_path / "var" / f"{USER}.tpl"
    blob = bytearray(tpl.read_bytes())
    blob[-5] ^= 0xFF
    tpl.write_bytes(bytes(blob))
    rc, out = pam("deny", enrolled["female"])
    assert rc != 0 and "Face data unreadable" in out, out
    rc, out = pam("permit", enrolled["female"])
    assert rc == 0, out


def test_pam_disabled_falls_through(pam: Pam, enrolled: dict[str, Path]) -> None:
    rc, out = pam("deny", enrolled["female"], **{"general.disabled": "true"})
    assert rc != 0 and "disabled" in out, out
    rc, out = pam("permit", enrolled["female"], **{"general.disabled": "true"})
    assert rc == 0, out


# --------------------------------------------------------------------------- remote sessions


@pytest.mark.slow
def test_pam_sudo_inside_ssh_never_opens_the_camera(
    pam: Pam, enrolled: dict[str, Path], logind: logind_mock.Logind, tmp_path: Path
) -> None:
    """The issue's case: an SSH session's sudo, tty /dev/pts/7, no PAM_RHOST. The owner's
    face is in front of the camera; the request comes from the remote session."""
    log = tmp_path / "helper.log"
    logind.add_session("ssh7", remote=True, kind="tty", service="sshd", remote_host="203.0.113.5")
    try:
        logind.map_pids({os.getpid(): "ssh7"})
        rc, out = pam("deny", enrolled["female"], tty="/dev/pts/7", log=log)
        assert rc != 0, out
        text = log.read_text()
        assert "REMOTE (15)" in text and "is remote (host 203.0.113.5)" in text, text
    finally:
        logind.map_pids({os.getpid(): "c1"})
    rc, out = pam("deny", enrolled["female"], tty="/dev/pts/7")  # the local session: it works
    assert rc == 0 and _greeter_lines(out) == ["Face recognised"], out


# --------------------------------------------------------------------------- lock-out


def _counter(var: Path) -> int | None:
    import json

    p = var / "state" / f"failures-{USER}.json"
    return int(json.loads(p.read_text())["failures"]) if p.exists() else None


def _child_of(pid: int) -> int | None:
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    return int(kids[0]) if kids else None


def _long_impostor(enrolled: dict[str, Path], d: Path, copies: int = 60) -> Path:
    """The man's frames over and over (hard links): an attempt that lasts its whole timeout.
    Their access times are set far back, so the first read of a file shows (relatime)."""
    d.mkdir()
    frames = sorted(enrolled["male"].iterdir())
    n = 0
    for _ in range(copies):
        for f in frames:
            os.link(f, d / f"{n:05d}.png")
            n += 1
    for f in frames:
        os.utime(f, (1_000_000, f.stat().st_mtime))
    return d


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_pam_cancelled_impostor_attempt_still_counts(
    pam: Pam, enrolled: dict[str, Path], tmp_path: Path, sig: signal.Signals
) -> None:
    """Ctrl-C at sudo (SIGINT) or SIGTERM, once faces were compared: ABORTED, and the failure
    is recorded; repeated, the lock-out comes as it does for attempts that ran to their end."""
    frames = _long_impostor(enrolled, tmp_path / "impostor")
    third = frames / "00002.png"
    cfg = {"auth.timeout": "30", "auth.max_failures": "3", "auth.lockout_seconds": "600"}
    name = pam.service([
        f"auth sufficient pam_exec.so quiet stdout {pam.helper(frames, **cfg)}",
        "auth requisite pam_deny.so",
    ])
    for n in (1, 2, 3):
        proc = subprocess.Popen(pam.command(name), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            # wait (bounded) until the helper has read a few frames: their faces were compared
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and third.stat().st_atime < 2_000_000:
                time.sleep(0.05)
            helper = _child_of(proc.pid)
            assert helper is not None, "the helper ended before it was stopped"
            os.kill(helper, sig)
            out, _ = proc.communicate(timeout=60)
        finally:
            proc.kill()
        os.utime(third, (1_000_000, third.stat().st_mtime))
        assert proc.returncode != 0, out
        assert _greeter_lines(out) == ["Face check cancelled"], out
        assert _counter(pam.var) == (n if n < 3 else 0), (n, out)  # the third one locks out
    rc, out = pam.pamtester(pam.command(name))
    assert rc != 0 and "after failed attempts" in out, out


# --------------------------------------------------------------------------- system folder


@pytest.mark.slow
def test_pam_world_writable_system_dir_is_refused_never_followed(
    pam: Pam, enrolled: dict[str, Path], tmp_path: Path
) -> None:
    """The issue's case: the system folder at 0777 with a user's ``state -> elsewhere``. One
    impostor attempt must neither chmod nor write the target: a clear refusal (exit 20, the
    password next), never a lock-out."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    os.chown(elsewhere, 65534, 65534)
    pam.var.chmod(0o777)
    (pam.var / "state").symlink_to(elsewhere)
    log = tmp_path / "helper.log"
    rc, out = pam("deny", enrolled["male"], log=log)
    assert rc != 0, out
    assert "TEMPLATE_ERROR (20)" in log.read_text() and "0777" in log.read_text()
    rc, out = pam("permit", enrolled["male"])
    assert rc == 0 and _greeter_lines(out) == [ph.SETUP_MESSAGE], out
    assert list(elsewhere.iterdir()) == []
    assert elsewhere.stat().st_mode & 0o777 == 0o755 and elsewhere.stat().st_uid == 65534
    pam.var.chmod(0o700)  # the folder fixed: the symlink inside is still refused
    rc, out = pam("permit", enrolled["male"], log=log)
    assert "symbolic link" in log.read_text() and list(elsewhere.iterdir()) == []


def _sysdir(tmp: Path) -> Path:
    var = tmp / "var"
    _fake_template(var)
    return var


def _attempt_decision(tmp: Path, var: Path) -> Decision:
    """An attempt that gets as far as the state folder (an image folder as the camera)."""
    frames = tmp / "frames"
    frames.mkdir(exist_ok=True)
    return ph.decide(_env(), _opts(_cfg(tmp, **{"camera.source": str(frames)}), var))


@pytest.mark.skipif(os.geteuid() != 0, reason="ownership checks need root")
@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("dir 0777", "has mode 0777"),
        ("dir 0770", "has mode 0770"),
        ("dir owned by nobody", "owned by uid 65534"),
        ("dir is a symlink", "symbolic link"),
        ("template 0644", "has mode 0644"),
        ("template owned by nobody", "owned by uid 65534"),
        ("keys is a symlink", "symbolic link"),
        ("state is a symlink", "symbolic link"),
        ("state owned by nobody", "owned by uid 65534"),
        ("state 0777", "has mode 0777"),
        ("counter is a symlink", "symbolic link"),
        ("counter 0666", "has mode 0666"),
        ("snapshots is a symlink", "symbolic link"),
    ],
)
def test_insecure_system_folder_is_refused(tmp_path: Path, case: str, expect: str) -> None:
    var = _sysdir(tmp_path)
    target = tmp_path / "target"
    target.mkdir()
    state = var / "state"
    if case.startswith("dir"):
        if case == "dir is a symlink":
            real = tmp_path / "real"
            var.rename(real)
            var.symlink_to(real)
        elif case == "dir owned by nobody":
            os.chown(var, 65534, 65534)
        else:
            var.chmod(int(case.split()[1], 8))
    elif case.startswith("template"):
        tpl = var / f"{USER}.tpl"
        tpl.chmod(0o644) if "0644" in case else os.chown(tpl, 65534, 65534)
    elif case == "keys is a symlink":
        (var / "keys").symlink_to(target)
    elif case == "state is a symlink":
        state.symlink_to(target)
    else:
        state.mkdir(mode=0o700)
        if case == "state owned by nobody":
            os.chown(state, 65534, 65534)
        elif case == "state 0777":
            state.chmod(0o777)
        elif case == "counter is a symlink":
            (state / f"failures-{USER}.json").symlink_to(target / "x.json")
        elif case == "counter 0666":
            (state / f"failures-{USER}.json").write_text('{"failures": 0}')
            (state / f"failures-{USER}.json").chmod(0o666)
        else:
            (state / "snapshots").symlink_to(target)
    d = _attempt_decision(tmp_path, var)
    assert d.status == AuthStatus.TEMPLATE_ERROR and expect in d.reason, (case, d)
    assert d.line == ph.SETUP_MESSAGE
    assert list(target.iterdir()) == []
    assert not (target / "x.json").exists()


def test_private_state_folder_is_made_and_readable_one_tightened(tmp_path: Path) -> None:
    var = _sysdir(tmp_path)
    assert ph.state_dir(var, USER) == var / "state"
    assert (var / "state").stat().st_mode & 0o777 == 0o700
    (var / "state").chmod(0o755)  # root's, only readable by others: made private, not refused
    ph.state_dir(var, USER)
    assert (var / "state").stat().st_mode & 0o777 == 0o700
    d = _attempt_decision(tmp_path, var)  # on to the template (garbage here)
    assert d.status == AuthStatus.TEMPLATE_ERROR and "bad magic" in d.reason, d


# --------------------------------------------------------------------------- greeter output


def test_pam_bad_config_says_not_set_up(pam: Pam, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[auth]\ntimeout = 'soon'\n")
    name = pam.service([
        f"auth sufficient pam_exec.so quiet stdout {pam.helper(config=bad)}",
        "auth required pam_permit.so",
    ])
    rc, out = pam.pamtester(pam.command(name))
    assert rc == 0 and _greeter_lines(out) == [ph.SETUP_MESSAGE], out


@pytest.mark.parametrize("kind", ["mp4", "gif"])
def test_pam_library_messages_never_reach_the_greeter(
    pam: Pam, clips_dir: Path, tmp_path: Path, kind: str
) -> None:
    """FFmpeg (through OpenCV) prints its complaints about a broken video on stderr, which
    pam_exec's ``stdout`` option sends to the greeter: only the helper's own line may come."""
    if kind == "mp4":
        bad = tmp_path / "broken.mp4"
        bad.write_bytes(b"garbage, no moov atom")
    else:
        bad = tmp_path / "broken.gif"
        bad.write_bytes((clips_dir / MALE).read_bytes()[:3000])
    rc, out = pam("permit", bad)
    assert rc == 0, out
    lines = _greeter_lines(out)
    assert len(lines) == 1 and lines[0].endswith("type your password"), out
    assert "\x1b" not in out and "@ 0x" not in out, out


# --------------------------------------------------------------------------- isolation

_PRELOAD_C = r"""
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
__attribute__((constructor)) static void mark(void) {
    char exe[512] = {0}, line[600];
    if (readlink("/proc/self/exe", exe, sizeof exe - 1) < 0) strcpy(exe, "?");
    int fd = open(MARKS "/preload", O_WRONLY | O_CREAT | O_APPEND, 0666);
    if (fd < 0) return;
    int n = snprintf(line, sizeof line, "%s\n", exe);
    write(fd, line, n);
    close(fd);
}
"""


class Hostile:
    """What a user controls when they start the helper: a folder (their cwd, and on
    PYTHONPATH) with ``numpy.py``, ``argparse.py`` and ``sitecustomize.py`` that each leave a
    mark when imported, an LD_PRELOAD library that marks every program it is loaded into, and
    a HOME of theirs. Marks go to ``marks/`` (world-writable, so any uid can leave one)."""

    def __init__(self, root: Path) -> None:
        root.mkdir()
        self.marks = root / "marks"
        self.marks.mkdir()
        self.marks.chmod(0o777)
        self.planted = root / "planted"
        self.planted.mkdir()
        for mod in ("numpy", "argparse", "sitecustomize"):
            (self.planted / f"{mod}.py").write_text(
                f"open({str(self.marks / mod)!r}, 'a').write('imported\\n')\n"
                "raise ImportError('planted')\n" if mod != "sitecustomize" else
                f"open({str(self.marks / mod)!r}, 'a').write('imported\\n')\n"
            )
        self.home = root / "home"
        self.home.mkdir()
        os.chown(self.home, 65534, 65534)
        self.preload: Path | None = None
        cc = shutil.which("cc") or shutil.which("gcc")
        if cc is not None:
            src = root / "mark.c"
            src.write_text(_PRELOAD_C)
            lib = root / "libmark.so"
            p = subprocess.run([cc, "-shared", "-fPIC", f'-DMARKS="{self.marks}"', "-o",
                                str(lib), str(src)], capture_output=True, text=True)
            if p.returncode == 0:
                self.preload = lib

    def env(self) -> dict[str, str]:
        e = {"PYTHONPATH": str(self.planted), "HOME": str(self.home), "PYTHONSTARTUP": "x",
             "PATH": f"{self.planted}:/usr/bin:/bin", "XDG_CACHE_HOME": str(self.home)}
        if self.preload is not None:
            e["LD_PRELOAD"] = str(self.preload)
        return e

    def imported(self) -> list[str]:
        return sorted(p.name for p in self.marks.iterdir() if p.name != "preload")

    def preloaded_into(self) -> list[str]:
        p = self.marks / "preload"
        return p.read_text().split() if p.exists() else []


@pytest.fixture()
def hostile(tmp_path: Path) -> Hostile:
    return Hostile(tmp_path / "user")


def _hold_at_lid(fifo: Path, proc: subprocess.Popen[str], pid_of: Callable[[], int | None]
                 ) -> tuple[int, dict[str, str], list[str]]:
    """The helper blocks reading the lid state from the FIFO ``fifo``: once it does, its
    pid, environment and command line (as the kernel has them), then let it go on."""
    import errno

    deadline = time.monotonic() + 60
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as e:
            if e.errno != errno.ENXIO:
                raise
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the helper never read the lid state"
        time.sleep(0.02)
    try:
        pid = pid_of()
        assert pid is not None
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        return pid, og.environment(pid), [c.decode() for c in cmdline if c]
    finally:
        os.close(fd)  # EOF: the lid is "open", the attempt goes on


def _isolated(env: dict[str, str], cmdline: list[str]) -> None:
    pam_vars = {k: v for k, v in env.items() if k.startswith("PAM_")}
    assert env == {**ph.ISOLATED_ENV, **pam_vars}, env
    assert "-I" in cmdline[1:3] and Path(cmdline[0]).name.startswith("python"), cmdline


def _lid_fifo(tmp: Path) -> Path:
    d = tmp / "lid" / "LID0"
    d.mkdir(parents=True)
    fifo = d / "state"
    os.mkfifo(fifo)
    return fifo


@pytest.mark.parametrize("how", ["wrapper", "venv-script"])
def test_root_helper_runs_isolated_when_started_directly(
    pam: Pam, installed: Path, hostile: Hostile, tmp_path: Path, how: str
) -> None:
    """Started by hand (or by a PAM application) with a hostile environment and cwd: the
    root process has exactly the fixed environment, runs ``python -I``, imports nothing
    planted, and writes nothing into the caller's HOME. The venv's console script gets there
    by re-executing itself (what ran before that - sitecustomize, LD_PRELOAD - is why
    /etc/pam.d must name the wrapper)."""
    fifo = _lid_fifo(tmp_path)
    program = installed if how == "wrapper" else VENV_SCRIPT
    args = pam.helper("/dev/video99", ("--lid-glob", str(fifo))).split()[1:]
    proc = subprocess.Popen(
        [str(program), *args], cwd=hostile.planted, text=True,
        env={**hostile.env(), **_env(PAM_SERVICE="sudo", PAM_TTY="/dev/pts/3")},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        pid, env, cmdline = _hold_at_lid(fifo, proc, lambda: proc.pid)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert pid == proc.pid  # exec all the way: pam_exec's child stays the application's child
    _isolated(env, cmdline)
    assert proc.returncode == AuthStatus.CAMERA_ERROR, (out, err)  # it got to the camera
    assert "numpy" not in hostile.imported() and "argparse" not in hostile.imported()
    if how == "wrapper":
        assert hostile.imported() == []
        loaded = hostile.preloaded_into()
        assert not any("python" in exe for exe in loaded), loaded
    assert list(hostile.home.iterdir()) == []


@pytest.mark.slow
def test_root_helper_never_writes_into_the_callers_home(
    pam: Pam, installed: Path, hostile: Hostile, enrolled: dict[str, Path]
) -> None:
    """A whole recognised attempt (models loaded, frames read) through the wrapper, started
    with the user's HOME and XDG_CACHE_HOME: nothing appears there."""
    args = pam.helper(enrolled["female"]).split()[1:]
    p = subprocess.run([str(installed), *args], cwd=hostile.planted, capture_output=True,
                       text=True, timeout=120, env={**hostile.env(), **_env()})
    assert p.returncode == 0, p
    assert list(hostile.home.iterdir()) == []
    assert hostile.imported() == []


def test_pam_environment_never_reaches_the_root_helper(
    pam: Pam, hostile: Hostile, tmp_path: Path
) -> None:
    """PAM variables set by an earlier module (pam_env here: PYTHONPATH, LD_PRELOAD, HOME)
    reach whatever pam_exec runs; the installed wrapper keeps them from the Python process."""
    envfile = tmp_path / "pam-environment"
    envfile.write_text("".join(f"{k}={v}\n" for k, v in hostile.env().items()))
    fifo = _lid_fifo(tmp_path)
    helper = pam.helper("/dev/video99", ("--lid-glob", str(fifo)))
    name = pam.service([
        f"auth optional pam_env.so readenv=1 envfile={envfile} conffile=/dev/null",
        f"auth sufficient pam_exec.so quiet stdout {helper}",
        "auth required pam_permit.so",
    ])
    proc = subprocess.Popen(pam.command(name, ops=("setcred", "authenticate")),
                            cwd=hostile.planted, stdin=subprocess.DEVNULL, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _, env, cmdline = _hold_at_lid(fifo, proc, lambda: _child_of(proc.pid))
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    _isolated(env, cmdline)
    assert proc.returncode == 0 and "Camera unavailable" in out, out
    assert hostile.imported() == []
    assert not any("python" in exe for exe in hostile.preloaded_into()), hostile.preloaded_into()
    assert list(hostile.home.iterdir()) == []


# --------------------------------------------------------------------------- documented lines

#: where PAM lines are given to people (the pam-auth-update profile is not: its `end` is
#: pam-auth-update's notation, turned into a jump when it writes common-auth)
DOCS = ("README.md", "docs/*.md", "packaging/README.md", "packaging/pam/README.md")
_LINE = re.compile(r"^\s*auth\s+(\[[^\]]*\]|\w+)\s+(\S+)(.*)$")
_SPAN = re.compile(r"`{1,2}(\[[^`\]]*=[^`\]]*\]|sufficient|required|requisite|optional)`{1,2}")


def documented_pam() -> tuple[set[str], list[list[str]]]:
    """Every control field the docs offer for the face line (inline, or in a one-line example)
    and every multi-line ``auth`` stack they show (fenced blocks)."""
    texts = [p.read_text() for d in DOCS for p in sorted(REPO.glob(d))]
    texts.append(ph.__doc__ or "")
    from faceunlock.unlock import system

    controls: set[str] = set()
    stacks: list[list[str]] = []
    for text in [*texts, system.PAM_LINE]:
        for block in re.findall(r"```[^\n]*\n(.*?)```", text, re.S):
            lines = [ln.strip() for ln in block.splitlines() if _LINE.match(ln)]
            face = [ln for ln in lines if "faceunlock-auth" in ln]
            if len(lines) > 1 and face:
                stacks.append(lines)
            elif face:
                controls.add(_LINE.match(face[0]).group(1))  # type: ignore[union-attr]
        prose = re.sub(r"```[^\n]*\n.*?```", "", text, flags=re.S)
        for ln in prose.splitlines():
            m = _LINE.match(ln)
            if m and "faceunlock-auth" in ln:
                controls.add(m.group(1))
        controls.update(re.findall(_SPAN, prose))
        controls.update(m.group(1) for m in re.finditer(r"`auth\s+(\S+)\s+pam_exec", prose))
    return controls, stacks


def test_docs_offer_the_tested_lines() -> None:
    controls, stacks = documented_pam()
    assert "sufficient" in controls and stacks, (controls, stacks)
    assert not [c for c in controls if "end" in c], controls


@pytest.mark.slow
def test_pam_lines_in_the_docs_work_in_a_hand_written_file(
    pam: Pam, enrolled: dict[str, Path]
) -> None:
    """Each control the docs give, in a hand-written service (face line, then pam_deny or
    pam_permit), and each stack they show verbatim (the helper's path replaced by the test
    wrapper): the enrolled face gets in, a user without a face falls through to the rest of
    the stack ("Authentication failure", never "System error")."""
    controls, stacks = documented_pam()
    helper = pam.helper(enrolled["female"])
    services: list[tuple[str, list[str], bool]] = []
    for c in sorted(controls):
        face = f"auth {c} pam_exec.so quiet stdout {helper}"
        services.append((f"control {c} + deny", [face, "auth requisite pam_deny.so"], False))
        services.append((f"control {c} + permit", [face, "auth required pam_permit.so"], True))
    for st in stacks:
        lines = [ln.replace("/usr/local/bin/faceunlock-auth", helper) for ln in st]
        services.append((f"stack {st[0]!r}", lines, False))
    for what, lines, password_ok in services:
        name = pam.service(lines)
        rc, out = pam.pamtester(pam.command(name))
        assert rc == 0 and "Face recognised" in out, (what, out)
        rc, out = pam.pamtester(pam.command(name, "bob"))
        if password_ok:
            assert rc == 0, (what, out)
        else:
            assert rc != 0 and "Authentication failure" in out, (what, out)
        assert "System error" not in out, (what, out)


@pytest.fixture(scope="module")
def attack_dirs(pam_ready: None, clips_dir: Path, tmp_path_factory: pytest.TempPathFactory
                ) -> dict[str, Path]:
    from tests.fakes.attack_material import attacks

    return attacks(tmp_path_factory.mktemp("pam-attacks"), clips_dir)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["copies", "moving-photo", "screen-replay"])
def test_pam_presentation_attack_is_refused_and_counted(
    kind: str, pam: Pam, attack_dirs: dict[str, Path], tmp_path: Path
) -> None:
    """At liveness.level passive the helper refuses the owner's photo or screen with status
    21 and counts it (the greeter shows why); the password still works."""
    import json

    rc, out = pam("deny", attack_dirs[kind], **{"liveness.level": "passive"})
    assert rc != 0, out
    # the greeter line of status 21 and no other
    assert _greeter_lines(out) == [ph.MESSAGES[AuthStatus.PRESENTATION_ATTACK]], out
    counter = json.loads((tmp_path / "var" / "state" / f"failures-{USER}.json").read_text())
    assert counter["failures"] == 1
    rc, out = pam("permit", attack_dirs[kind], **{"liveness.level": "passive"})
    assert rc == 0, out


@pytest.mark.slow
def test_pam_owner_unlocks_with_passive_liveness(pam: Pam, enrolled: dict[str, Path]) -> None:
    rc, out = pam("deny", enrolled["female"], **{"liveness.level": "passive"})
    assert rc == 0, out
    assert _greeter_lines(out) == ["Face recognised"], out


@pytest.mark.slow
@pytest.mark.parametrize("kinds", ["turn", "blink"])
def test_pam_active_challenge_prompts_the_greeter_and_fails_a_still_head(
    pam: Pam, clips_dir: Path, tmp_path: Path, kinds: str
) -> None:
    """liveness.level = active: the woman, matched beside the man in the two-person clip,
    keeps her head still and does not blink. The greeter gets the prompt (a PAM_TEXT_INFO
    line of its own, during the attempt), then the challenge's refusal, whichever side was
    drawn (``liveness.challenges`` narrows the draw to one kind); the attempt counts as a
    failure."""
    both = clip_frames(clips_dir / BOTH)
    still = png_folder(tmp_path / "both", both + both)  # ~3.7 s at the camera's 30 fps
    rc, out = pam("deny", still, **{"liveness.level": "active", "liveness.challenges": kinds})
    assert rc != 0, out
    lines = _greeter_lines(out)
    if kinds == "turn":
        assert lines[0] in ("Turn your head slowly to your left",
                            "Turn your head slowly to your right"), out
        assert lines[1:] == ["Face not accepted: you did not turn your head as asked. "
                             "Type your password."], out
    else:
        assert lines == ["Blink twice", "Face not accepted: you did not blink as asked. "
                         "Type your password."], out
    assert _counter(pam.var) == 1
