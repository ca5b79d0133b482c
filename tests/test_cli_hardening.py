"""CLI hardening (issue 11, items 9-13): bad numbers, huge images, unwritable outputs, things
that are not cameras, and enrolment checks that run before the camera opens."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pytest

from faceunlock import cli
from faceunlock.cli import build_parser, main
from faceunlock.config import Config
from faceunlock.engine import service
from faceunlock.engine.templates import (
    Anchor,
    KeyringKeyProvider,
    StaticKeyProvider,
    Template,
    TemplateStore,
)
from faceunlock.errors import (
    AuthStatus,
    KeyringUnavailableError,
    TemplateCorruptError,
    TemplateKeyError,
    TemplateModelMismatchError,
)
from tests.fakes.bad_images import png

CLI = Path(sys.executable).parent / "faceunlock"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


# ------------------------------------------------------------------ item 11: numeric options

NUMERIC = [
    # (argv before the option, option, bad values, the range the message must give)
    (["verify", "a.jpg", "b.jpg"], "--threshold", ["nan", "5", "-1", "inf"], "between 0 and 2"),
    (["auth"], "--timeout", ["nan", "0", "31", "-inf"], "between 0.5 and 30 (the range of "
                                                         "auth.timeout)"),
    (["test"], "--timeout", ["nan", "1e9"], "between 0.5 and 30"),
    (["calibrate"], "--seconds", ["-1", "nan", "0"], "between 0.5 and 60"),
    (["enroll"], "--anchors", ["2", "51", "3.5", "nan"], "an integer between 3 and 50 (the "
                                                         "range of enrol.anchors)"),
    (["verify", "a.jpg", "b.jpg"], "--min-face", ["0", "-80", "1e3"], "between 20 and 4096"),
    (["verify", "a.jpg", "b.jpg"], "--max-face", ["99999"], "between 20 and 4096"),
    (["verify", "a.jpg", "b.jpg"], "--downscale", ["nan", "0", "-2"], "between 0.1 and 16"),
    (["verify", "a.jpg", "b.jpg"], "--upsample", ["-1", "9"], "between 0 and 3"),
    (["verify", "a.jpg", "b.jpg"], "--zoom", ["nan", "0", "inf"], "between 0.5 and 2"),
    (["verify", "a.jpg", "b.jpg"], "--threads", ["0", "-4"], "between 1 and 256"),
    (["embed", "d", "--out", "o.npz"], "--zoom", ["nan"], "between 0.5 and 2"),
    (["bench"], "--repeats", ["0", "-5"], "between 1 and 100000"),
    (["live"], "--max-frames", ["-1"], "between 0 and 1e+09"),
    (["eval", "unlock", "--gallery", "g"], "--anchors", ["0"], "between 1 and 50"),
    (["eval", "unlock", "--gallery", "g"], "--min-images", ["-1"], "between 0 and 1e+06"),
    (["train", "--config", "c.toml"], "--epochs", ["0"], "between 1 and 100000"),
]


@pytest.mark.parametrize(
    ("argv", "option", "value", "allowed"),
    [(a, o, v, r) for a, o, vs, r in NUMERIC for v in vs],
    ids=[f"{a[0]}{o}={v}" for a, o, vs, _ in NUMERIC for v in vs],
)
def test_numeric_options_are_validated(
    capsys: pytest.CaptureFixture[str], argv: list[str], option: str, value: str, allowed: str
) -> None:
    """Before: nan, inf and out-of-range values were accepted (`auth --timeout nan` never
    ended); `enroll --anchors 2` enrolled two anchors. Now: exit 2 with the allowed range."""
    with pytest.raises(SystemExit) as ei:
        main([*argv, f"{option}={value}"])
    err = capsys.readouterr().err
    assert ei.value.code == AuthStatus.USAGE
    assert f"argument {option}: must be" in err and allowed in err, err
    assert repr(value) in err


def test_numeric_options_accept_their_range() -> None:
    p = build_parser()
    assert p.parse_args(["auth", "--timeout", "0.5"]).timeout == 0.5
    assert p.parse_args(["auth", "--timeout", " 30 "]).timeout == 30.0
    assert p.parse_args(["enroll", "--anchors", "3"]).anchors == 3
    assert p.parse_args(["enroll", "--anchors", "+50"]).anchors == 50
    assert p.parse_args(["verify", "a", "b", "--threshold", "0.6"]).threshold == 0.6
    assert p.parse_args(["calibrate", "--seconds", "1e1"]).seconds == 10.0
    assert p.parse_args(["live", "--max-frames", "0"]).max_frames == 0
    assert p.parse_args(["test"]).timeout == 10.0  # the defaults are in range


# ------------------------------------------------------------------ items 9-10: huge images


@pytest.fixture()
def face(lfw_dir: Path) -> Path:
    return lfw_dir / "images" / "AJ_Cook" / "AJ_Cook_0001.jpg"


def test_verify_refuses_bombs_and_huge_images(
    face: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: the 50000² PNG gave a cv2.error traceback (exit 1); a real 8000² PNG was
    decoded and run through the detector (gigabytes: a 20000² one took 16 GiB)."""
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png(50000, 50000))
    rc, _, err = _run(capsys, "verify", str(face), str(bomb))
    assert rc == AuthStatus.BAD_INPUT and "50000×50000 pixels" in err and "40 MP" in err
    big = tmp_path / "big.png"
    big.write_bytes(png(8000, 8000, full=True))
    rc, _, err = _run(capsys, "verify", str(big), str(face))
    assert rc == AuthStatus.BAD_INPUT and "8000×8000 pixels" in err


def test_embed_skips_a_bomb(face: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: one bomb in the folder aborted the whole run with a traceback."""
    d = tmp_path / "imgs"
    d.mkdir()
    shutil.copy(face, d / "a.jpg")
    (d / "b.png").write_bytes(png(50000, 50000))
    shutil.copy(face, d / "c.jpg")
    out = tmp_path / "out.npz"
    rc, stdout, err = _run(capsys, "embed", str(d), "--out", str(out), "--json")
    assert rc == 0, err
    summary = json.loads(stdout)
    assert (summary["images"], summary["found"], summary["unreadable"]) == (3, 2, 1)
    assert "b.png: is 50000×50000 pixels" in err
    assert np.load(out)["found"].tolist() == [True, False, True]


@pytest.mark.parametrize("where", ["folder", "proc"])
def test_embed_out_that_cannot_be_written(
    face: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    """Before: IsADirectoryError / FileNotFoundError tracebacks after embedding everything."""
    d = tmp_path / "imgs"
    d.mkdir()
    shutil.copy(face, d / "a.jpg")
    if where == "proc" and not os.path.isdir("/proc/self"):
        pytest.skip("no /proc")
    out = tmp_path / "outdir" if where == "folder" else Path("/proc/x.npz")
    if where == "folder":
        out.mkdir()
    rc, _, err = _run(capsys, "embed", str(d), "--out", str(out))
    assert rc == AuthStatus.BAD_INPUT, err
    assert f"--out {out}:" in err
    assert ("is a folder" in err) if where == "folder" else ("no file can be written" in err)
    if where == "folder":
        assert list(out.iterdir()) == []


def test_image_folder_camera_with_a_bomb(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "cam"
    d.mkdir()
    (d / "0.png").write_bytes(png(50000, 50000))
    rc, _, err = _run(capsys, "live", "--source", str(d), "--max-frames", "1")
    assert rc == AuthStatus.BAD_INPUT and "0.png: is 50000×50000 pixels" in err


# ------------------------------------------------------------------ item 12: not a camera


def test_dev_null_is_not_a_camera(capsys: pytest.CaptureFixture[str]) -> None:
    """Before: "camera /dev/null is busy" and a list of every process holding /dev/null."""
    if not os.path.exists("/dev/null"):
        pytest.skip("no /dev/null")
    rc, _, err = _run(capsys, "live", "--source", "/dev/null", "--max-frames", "1")
    assert rc == AuthStatus.CAMERA_ERROR
    assert "/dev/null is not a camera" in err and "V4L2 video capture device" in err
    assert "busy" not in err and "pid" not in err


# ------------------------------------------------------------------ item 13: enrol checks first


@pytest.fixture()
def static_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TemplateStore:
    """The CLI's store, with keys in memory instead of the keyring (a real key provider)."""
    store = TemplateStore(tmp_path / "templates", StaticKeyProvider({}))
    monkeypatch.setattr(cli, "_store", lambda: store)
    return store


@pytest.fixture()
def no_frames(tmp_path: Path) -> Path:
    """An image-folder camera that fails as soon as it is opened: a check that runs first
    shows in the message instead of this folder's error."""
    d = tmp_path / "no-frames"
    d.mkdir()
    return d


def _template(user: str, model_sha256: str) -> Template:
    rng = np.random.default_rng(3)
    t = Template(user=user, model_sha256=model_sha256, threshold=0.5)
    for _ in range(3):
        t.add_anchor(Anchor.new(rng.standard_normal(128).astype(np.float32),
                                rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    return t


def _enrol(capsys: pytest.CaptureFixture[str], source: Path, *extra: str) -> tuple[int, str]:
    rc, _, err = _run(capsys, "enroll", "--source", str(source), *extra)
    assert "Traceback" not in err
    assert "no image files" not in err, "the camera was opened before the check"
    return rc, err


def test_enrol_checks_label_and_user_first(
    static_store: TemplateStore, no_frames: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, err = _enrol(capsys, no_frames, "--user", "alice", "--label", "a\tb")
    assert rc == AuthStatus.BAD_INPUT and "invalid appearance label" in err
    rc, err = _enrol(capsys, no_frames, "--user=../alice")
    assert rc == AuthStatus.BAD_INPUT and "invalid user name" in err


def test_enrol_checks_the_existing_template_first(
    static_store: TemplateStore, no_frames: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Model mismatch, a deleted key and a corrupt file: each known before any capture."""
    sha = service.pipeline_for(Config()).encoder.sha256
    static_store.save(_template("bob", "ab" * 32))  # made with another model
    rc, err = _enrol(capsys, no_frames, "--user", "bob")
    assert rc == TemplateModelMismatchError.status and "re-enrol" in err
    static_store.save(_template("carol", sha))
    static_store.key_provider.delete_key("carol")  # the keyring lost the key
    rc, err = _enrol(capsys, no_frames, "--user", "carol")
    assert rc == TemplateKeyError.status and "no key" in err
    static_store.path("dave").parent.mkdir(parents=True, exist_ok=True)
    static_store.path("dave").write_bytes(b"FUTPL\x01 truncated")
    rc, err = _enrol(capsys, no_frames, "--user", "dave")
    assert rc == TemplateCorruptError.status and "template file" in err
    # --replace starts afresh: the old template is not read (the capture then fails here)
    rc, _, err = _run(capsys, "enroll", "--source", str(no_frames), "--user", "bob", "--replace")
    assert rc == AuthStatus.BAD_INPUT and "no image files" in err


def test_enrol_checks_the_keyring_first(
    tmp_path: Path, no_frames: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No usable keyring (keyring's own `fail` backend): known before the capture."""
    from keyring.backends import fail

    store = TemplateStore(tmp_path / "t", KeyringKeyProvider(backend=fail.Keyring()))
    monkeypatch.setattr(cli, "_store", lambda: store)
    rc, err = _enrol(capsys, no_frames, "--user", "erin")
    assert rc == KeyringUnavailableError.status and "no usable keyring" in err


def test_enrol_read_only_template_folder(tmp_path: Path) -> None:
    """Before: captured every anchor, then a PermissionError traceback at the save (exit 1).
    Through the real `faceunlock` (as root the folder is a read-only bind mount in a private
    mount namespace; otherwise it is chmod 0500)."""
    data = tmp_path / "data"
    folder = data / "faceunlock"
    folder.mkdir(parents=True)
    empty = tmp_path / "no-frames"
    empty.mkdir()
    env = {**os.environ, "XDG_DATA_HOME": str(data), "FACEUNLOCK_CONFIG": str(tmp_path / "c")}
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    cmd = [str(CLI), "enroll", "--source", str(empty)]
    if os.geteuid() == 0:
        if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "-m", "true"], capture_output=True
        ).returncode != 0:
            pytest.skip("root without mount namespaces: a read-only folder cannot be made")
        cmd = ["unshare", "-m", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"',
               str(folder), *cmd]
    else:
        folder.chmod(0o500)
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    finally:
        folder.chmod(0o700)
    assert r.returncode == AuthStatus.BAD_INPUT, r.stderr
    assert f"template folder {folder} is read-only" in r.stderr
    assert "Traceback" not in r.stderr and "no image files" not in r.stderr
    assert list(folder.iterdir()) == []


# ------------------------------------------------------------------ item 12: dim enrolment


def test_dim_enrolment_says_too_dark(
    clips_dir: Path,
    tmp_path: Path,
    static_store: TemplateStore,
    clip_config: Callable[[Mapping[str, str]], Config],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The woman's clip at a third of its brightness (face ~50 grey levels): before, every
    frame said "Hold still for a moment" (low contrast reads as blur) and the exit was 4."""
    from tests.fakes.clip_material import FEMALE, clip_frames, png_folder

    clip_config({})
    dim = [(f.astype(np.float32) * 0.35).astype(np.uint8) for f in clip_frames(clips_dir / FEMALE)]
    folder = png_folder(tmp_path / "dim", dim)
    rc, _, err = _run(capsys, "enroll", "--user", "alice", "--source", str(folder))
    assert rc == AuthStatus.TOO_DARK, err
    assert "It is too dark" in err and "light" in err
    assert "Hold still" not in err
    assert not static_store.exists("alice")
    # the same clip at full brightness still enrols
    bright = png_folder(tmp_path / "bright", clip_frames(clips_dir / FEMALE))
    rc, _, err = _run(capsys, "enroll", "--user", "alice", "--source", str(bright),
                      "--anchors", "3")
    assert rc == 0, err
