"""The PAM helper ``faceunlock-auth``: its decision function in-process, its process behaviour
(timeouts, signals) in a subprocess, and a real PAM stack through ``pamtester`` and
``pam_exec.so`` (root, pamtester and the ../shared clips needed; skipped otherwise)."""

from __future__ import annotations

import os
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
from clip_material import FEMALE, MALE, clip_config, clip_frames, png_folder  # tests/unlock

from faceunlock.config import save_config
from faceunlock.errors import AuthStatus
from faceunlock.unlock import pam_helper as ph
from faceunlock.unlock.pam_helper import Decision, Options, Request

HELPER = Path(sys.executable).parent / "faceunlock-auth"
USER = "alice"


def _cfg(tmp: Path, **overrides: str) -> Path:
    return save_config(clip_config(**{"auth.timeout": "15", **overrides}), tmp / "config.toml")


def _fake_template(system_dir: Path, user: str = USER, data: bytes = b"garbage") -> Path:
    system_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    p = system_dir / f"{user}.tpl"
    p.write_bytes(data)
    p.chmod(0o600)
    return p


def _env(**kw: str) -> dict[str, str]:
    return {"PAM_TYPE": "auth", "PAM_USER": USER, "PAM_SERVICE": "test", **kw}


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
    opts = Options(
        config=_cfg(tmp, **cfg),
        system_dir=tmp / "var",
        lid_glob=str(tmp / "lid" / "*" / "state"),
    )
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
    d = ph.decide(_env(), Options(config=bad, system_dir=tmp_path / "var"))
    assert d.status == AuthStatus.BAD_INPUT and d.exit_code != 0

    def boom(*a: object, **k: object) -> Decision:
        raise RuntimeError("boom")

    monkeypatch.setattr(ph, "attempt", boom)
    d = _decide(tmp_path, _env())
    assert d.status == AuthStatus.ERROR and "boom" in d.reason


@pytest.mark.skipif(os.geteuid() != 0, reason="the ownership check applies to root only")
def test_config_writable_by_others_is_refused(tmp_path: Path) -> None:
    _fake_template(tmp_path / "var")
    cfg = _cfg(tmp_path, **{"camera.source": "/dev/video99"})
    opts = Options(config=cfg, system_dir=tmp_path / "var")
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
        args = ["--config", str(_cfg(tmp_path)), "--system-dir", str(tmp_path / "var")]
        assert ph.main(args) == AuthStatus.NO_TEMPLATE
        out, err = capsys.readouterr()
        assert out == "No face enrolled, type your password\n"
        assert err.startswith("faceunlock-auth: NO_TEMPLATE (11)") and err.count("\n") == 1
        assert ph.main([*args, "--quiet"]) == AuthStatus.NO_TEMPLATE
        assert capsys.readouterr() == ("", "")
        assert ph.main([*args, "--timeout", "0"]) == AuthStatus.USAGE
        assert ph.main(["--bogus"]) == AuthStatus.USAGE
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
    sys.exit(ph.main(sys.argv[2:]))
    """
)


def _run_stuck(tmp: Path, mode: str, timeout: str) -> subprocess.Popen[str]:
    _fake_template(tmp / "var")
    args = ["--config", str(_cfg(tmp)), "--system-dir", str(tmp / "var"), "--timeout", timeout]
    return subprocess.Popen(
        [sys.executable, "-c", _STUCK, mode, *args],
        env={"PAM_TYPE": "auth", "PAM_USER": USER, "PATH": os.environ.get("PATH", "")},
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
        "import sys; from faceunlock.unlock import pam_helper as ph; rc = ph.main(sys.argv[1:]); "
        "heavy = [m for m in ('cv2', 'onnxruntime', 'numpy') if m in sys.modules]; "
        "print('HEAVY', heavy); sys.exit(rc)"
    )
    args = ["--config", str(_cfg(tmp_path)), "--system-dir", str(tmp_path / "var")]
    p = subprocess.run(
        [sys.executable, "-c", code, *args],
        env={"PAM_TYPE": "auth", "PAM_USER": USER},
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
    if not HELPER.is_file():
        pytest.skip(f"{HELPER} is missing (pip install -e .)")


@pytest.fixture(scope="module")
def enrolled(
    pam_ready: None, clips_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The woman enrolled (first half of her clip) into a system store; PNG folders of the
    probes. Returns paths: var (the system dir), female (second half), male (10 frames)."""
    from faceunlock.engine import service
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


PamRun = Callable[..., tuple[int, str]]


@pytest.fixture()
def pam(enrolled: dict[str, Path], tmp_path: Path) -> Iterator[PamRun]:
    """``pam(fallback, camera=..., user=..., rhost=..., args=[...], log=None, **config)``
    writes a PAM service (helper first, then ``pam_deny``/``pam_permit``), runs pamtester and
    returns (exit code, combined output). Each test gets its own copy of the system dir."""
    var = tmp_path / "var"
    shutil.copytree(enrolled["var"], var)
    written: list[Path] = []

    def run(
        fallback: str,
        camera: str | Path = "/dev/video99",
        *,
        user: str = USER,
        rhost: str | None = None,
        args: tuple[str, ...] = (),
        log: Path | None = None,
        **cfg: str,
    ) -> tuple[int, str]:
        config = _cfg(tmp_path, **{"camera.source": str(camera), **cfg})
        opts = f"quiet log={log}" if log else "quiet stdout"
        helper = f"{HELPER} --config {config} --system-dir {var} {' '.join(args)}".strip()
        second = {
            "deny": "auth requisite pam_deny.so",
            "permit": "auth required pam_permit.so",
        }[fallback]
        name = f"faceunlock-test-{secrets.token_hex(4)}"
        path = Path("/etc/pam.d") / name
        lines = [f"auth sufficient pam_exec.so {opts} {helper}", second]
        path.write_text("\n".join([*lines, "account required pam_permit.so", ""]))
        written.append(path)
        cmd = ["pamtester", "-v"]
        if rhost is not None:
            cmd += ["-I", f"rhost={rhost}"]
        p = subprocess.run(
            [*cmd, name, user, "authenticate"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=90,
        )
        return p.returncode, p.stdout + p.stderr

    yield run
    for p in written:
        p.unlink(missing_ok=True)


def _greeter_lines(out: str) -> list[str]:
    return [ln for ln in out.splitlines() if not ln.startswith("pamtester:")]


@pytest.mark.slow
def test_pam_enrolled_face_unlocks(pam: PamRun, enrolled: dict[str, Path]) -> None:
    rc, out = pam("deny", enrolled["female"])
    assert rc == 0, out
    assert _greeter_lines(out) == ["Face recognised"], out  # stderr did not leak to the greeter
    assert "successfully authenticated" in out


@pytest.mark.slow
def test_pam_impostor_is_refused_and_password_still_works(
    pam: PamRun, enrolled: dict[str, Path]
) -> None:
    rc, out = pam("deny", enrolled["male"])
    assert rc != 0, out
    assert _greeter_lines(out) == ["Face not recognised, type your password"], out
    rc, out = pam("permit", enrolled["male"])
    assert rc == 0, out
    assert "Face not recognised" in out


def test_pam_no_template_falls_through(pam: PamRun, enrolled: dict[str, Path]) -> None:
    rc, out = pam("deny", enrolled["female"], user="bob")
    assert rc != 0 and "No face enrolled" in out, out
    rc, out = pam("permit", enrolled["female"], user="bob")
    assert rc == 0 and "No face enrolled" in out, out


def test_pam_remote_session_never_opens_the_camera(pam: PamRun, tmp_path: Path) -> None:
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


def test_pam_missing_camera_falls_through(pam: PamRun) -> None:
    rc, out = pam("deny", "/dev/video99")
    assert rc != 0 and "Camera unavailable" in out, out
    rc, out = pam("permit", "/dev/video99")
    assert rc == 0, out


@pytest.mark.slow
def test_pam_helper_timeout_falls_through(pam: PamRun, enrolled: dict[str, Path]) -> None:
    rc, out = pam("deny", enrolled["female"], args=("--timeout", "0.2"))
    assert rc != 0 and "No face seen" in out, out
    rc, out = pam("permit", enrolled["female"], args=("--timeout", "0.2"))
    assert rc == 0, out


@pytest.mark.slow
def test_pam_corrupt_template_falls_through(
    pam: PamRun, enrolled: dict[str, Path], tmp_path: Path
) -> None:
    tpl = tmp_path / "var" / f"{USER}.tpl"
    blob = bytearray(tpl.read_bytes())
    blob[-5] ^= 0xFF
    tpl.write_bytes(bytes(blob))
    rc, out = pam("deny", enrolled["female"])
    assert rc != 0 and "Face data unreadable" in out, out
    rc, out = pam("permit", enrolled["female"])
    assert rc == 0, out


def test_pam_disabled_falls_through(pam: PamRun, enrolled: dict[str, Path]) -> None:
    rc, out = pam("deny", enrolled["female"], **{"general.disabled": "true"})
    assert rc != 0 and "disabled" in out, out
    rc, out = pam("permit", enrolled["female"], **{"general.disabled": "true"})
    assert rc == 0, out
