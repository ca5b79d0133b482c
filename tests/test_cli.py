"""CLI verbs: JSON shapes (other scripts depend on them), exit codes and error messages."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceunlock.cli import main
from faceunlock.errors import AuthStatus
from faceunlock.paths import models_dir


def _img(lfw: Path, name: str, i: int) -> str:
    return str(lfw / "images" / name / f"{name}_{i:04d}.jpg")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_verify_json_shape(lfw_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(
        capsys,
        "verify",
        _img(lfw_dir, "Abdullah_Gul", 13),
        _img(lfw_dir, "Abdullah_Gul", 14),
        "--json",
    )
    assert rc == 0
    res = json.loads(out)
    assert set(res) == {"distance", "threshold", "match"}
    assert isinstance(res["distance"], float) and isinstance(res["match"], bool)
    assert res["match"] is True and res["distance"] < res["threshold"]
    rc, out, _ = _run(
        capsys, "verify", _img(lfw_dir, "Abdullah_Gul", 13), _img(lfw_dir, "AJ_Cook", 1), "--json"
    )
    assert rc == 0 and json.loads(out)["match"] is False


def test_verify_errors_name_the_image(
    lfw_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _img(lfw_dir, "AJ_Cook", 1)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    rc, _, err = _run(capsys, "verify", good, str(bad), "--json")
    assert rc == AuthStatus.BAD_INPUT
    assert str(bad) in err and "decodable" in err
    rc, _, err = _run(capsys, "verify", str(tmp_path / "missing.png"), good)
    assert rc == AuthStatus.BAD_INPUT and "missing.png" in err and "not found" in err
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 127, np.uint8))
    rc, _, err = _run(capsys, "verify", good, str(blank))
    assert rc == AuthStatus.NO_FACE and "blank.png" in err and "no face" in err


@pytest.mark.parametrize(("name", "precision"), [("encoder-int8.onnx", "auto"),
                                                ("encoder.onnx", "fp32")])
def test_corrupt_model_is_named(
    lfw_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, precision: str
) -> None:
    mdir = tmp_path / "models"
    shutil.copytree(models_dir(), mdir)
    enc = mdir / name
    data = bytearray(enc.read_bytes())
    data[len(data) // 2] ^= 0xFF
    enc.write_bytes(bytes(data))
    img = _img(lfw_dir, "AJ_Cook", 1)
    rc, _, err = _run(capsys, "verify", img, img, "--model", str(mdir), "--precision", precision)
    assert rc == AuthStatus.MODEL_ERROR
    assert name in err and "sha256" in err


def test_embed_dir_and_list(
    lfw_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "imgs"
    d.mkdir()
    shutil.copy(_img(lfw_dir, "AJ_Cook", 1), d / "a.jpg")
    shutil.copy(_img(lfw_dir, "Abdullah_Gul", 13), d / "b.jpg")
    cv2.imwrite(str(d / "c.png"), np.zeros((100, 100, 3), np.uint8))
    out = tmp_path / "out.npz"
    rc, _, _ = _run(capsys, "embed", str(d), "--out", str(out))
    assert rc == 0
    z = np.load(out)
    assert set(z.files) == {"paths", "found", "emb", "boxes"}
    assert z["paths"].dtype.kind == "U" and z["found"].dtype == bool
    assert z["emb"].shape == (3, 128) and z["emb"].dtype == np.float32
    assert z["boxes"].shape == (3, 4) and z["boxes"].dtype == np.float32
    assert z["found"].tolist() == [True, True, False]
    assert not z["emb"][2].any()
    lst = tmp_path / "list.txt"
    lst.write_text("b.jpg\na.jpg\n")
    rc, _, _ = _run(capsys, "embed", "--list", str(lst), "--root", str(d), "--out", str(out))
    z2 = np.load(out)
    assert z2["paths"].tolist() == ["b.jpg", "a.jpg"]
    np.testing.assert_allclose(z2["emb"][0], z["emb"][1], atol=1e-6)


def test_embed_select_picks_the_whole_the_largest_or_the_central_face(
    lfw_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = cv2.imread(str(_img(lfw_dir, "AJ_Cook", 1)))
    big = cv2.resize(big, None, fx=1.4, fy=1.4, interpolation=cv2.INTER_LINEAR)  # face ~134 px
    small = cv2.imread(str(_img(lfw_dir, "Abdullah_Gul", 13)))  # face ~96 px
    frame = np.full((480, 800, 3), 90, np.uint8)
    frame[60:60 + big.shape[0], 0:big.shape[1]] = big  # face centre near x 175
    frame[115:365, 275:525] = small  # face centre near x 400, the frame's centre
    d = tmp_path / "imgs"
    d.mkdir()
    cv2.imwrite(str(d / "two.png"), frame)
    centres = {}
    for how in ("largest", "center"):
        out = tmp_path / f"{how}.npz"
        rc, _, _ = _run(capsys, "embed", str(d), "--select", how, "--out", str(out))
        assert rc == 0
        b = np.load(out)["boxes"][0]
        centres[how] = (b[0] + b[2]) / 2
    assert abs(centres["largest"] - 175) < 40
    assert abs(centres["center"] - 400) < 40
    # the default (whole): the largest face the border does not cut; here both are whole
    out = tmp_path / "whole.npz"
    assert _run(capsys, "embed", str(d), "--out", str(out))[0] == 0
    b = np.load(out)["boxes"][0]
    assert abs((b[0] + b[2]) / 2 - 175) < 40
    # the big face cut by the left border (its box starts left of the image): the default
    # describes the whole smaller face; --select largest still the cut one
    frame = np.full((480, 800, 3), 90, np.uint8)
    frame[60:60 + big.shape[0], 0:big.shape[1] - 120] = big[:, 120:]
    frame[115:365, 275:525] = small
    cv2.imwrite(str(d / "two.png"), frame)
    for how, centre in (("whole", 400), ("largest", 50)):
        out = tmp_path / f"cut-{how}.npz"
        assert _run(capsys, "embed", str(d), "--select", how, "--out", str(out))[0] == 0
        b = np.load(out)["boxes"][0]
        assert abs((b[0] + b[2]) / 2 - centre) < 40, (how, b)


def test_eval_lfw_json(lfw_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = (lfw_dir / "pairsDevTest.txt").read_text().splitlines()
    same, diff = lines[1:9], lines[501:509]
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("\n".join(["8", *same, *diff]) + "\n")
    rc, out, _ = _run(
        capsys,
        "eval",
        "lfw",
        "--pairs",
        str(pairs),
        "--fit-pairs",
        str(pairs),
        "--images",
        str(lfw_dir / "images"),
        "--json",
    )
    assert rc == 0
    res = json.loads(out)
    for key in (
        "accuracy",
        "roc_auc",
        "eer",
        "tar_at_far_1e-3",
        "no_face",
        "threshold",
        "protocol",
        "pairs",
        "images",
    ):
        assert key in res
    assert res["pairs"] == 16 and res["protocol"] == "view1-fitted"
    assert res["accuracy"] >= 0.9


def test_bench_json(lfw_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _run(capsys, "bench", "--json", "--no-cold", "--repeats", "3")
    assert rc == 0
    # what it is doing, step by step, on stderr (it was silent for about 9 s)
    assert err.startswith("bench: loading the models...\nbench: timing 3 single frames...\n")
    res = json.loads(out)
    for stage in ("detect", "landmarks", "align", "embed", "total"):
        assert set(res["stages_ms"][stage]) == {"median", "p90"}
    assert res["stages_ms"]["faces"] == 1
    assert res["frame"] == "640x480" and res["peak_rss_mb"] > 0
    # each liveness layer's cost: passive once per attempt, active per challenge frame
    assert set(res["liveness_ms"]) == {"v2_per_crop", "v1se_per_crop", "judge_attempt",
                                       "turn_per_frame", "blink_per_frame"}
    assert all(v > 0 for v in res["liveness_ms"].values())


def test_config_verbs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FACEUNLOCK_CONFIG", str(tmp_path / "c.toml"))
    assert _run(capsys, "config", "set", "auth.timeout", "2.5")[0] == 0
    rc, out, _ = _run(capsys, "config", "get", "auth.timeout")
    assert rc == 0 and out.strip() == "2.5"
    rc, _, err = _run(capsys, "config", "set", "auth.security_level", "fast")
    assert rc == AuthStatus.BAD_INPUT and "convenient, balanced, secure" in err
    rc, _, err = _run(capsys, "config", "set", "auth.timout", "1")
    assert rc == AuthStatus.BAD_INPUT and "auth.timeout" in err
    assert _run(capsys, "disable")[0] == 0
    rc, out, _ = _run(capsys, "config", "get", "general.disabled")
    assert out.strip() == "True"


def test_auth_without_template(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    clips_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No template: a clear NO_TEMPLATE exit (the key store is never asked)."""
    monkeypatch.setenv("FACEUNLOCK_CONFIG", str(tmp_path / "c.toml"))
    rc, _, err = _run(
        capsys,
        "auth",
        "--user",
        "nobody-enrolled",
        "--source",
        str(clips_dir / "head-pose-face-detection-male.gif"),
    )
    assert rc == AuthStatus.NO_TEMPLATE, err


def _cli(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    """The real `faceunlock` entry point as its own process."""
    exe = Path(sys.executable).parent / "faceunlock"
    return subprocess.run([str(exe), *argv], env=env, capture_output=True, text=True,
                          timeout=120)


def test_config_verbs_work_on_a_file_with_bad_values(tmp_path: Path) -> None:
    """An edit that left bad values does not lock `config set`/`get`/`reset` out: set fixes
    the key it is given and names the ones still bad; get shows the good keys."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('[auth]\ntimeout = "abc"\n[camera]\nfps = 9999\nsource = "clip.mp4"\n')
    env = {**os.environ, "FACEUNLOCK_CONFIG": str(cfg)}
    r = _cli(env, "config", "get", "camera.source")
    assert r.returncode == 0 and r.stdout.strip() == "clip.mp4"
    assert "camera.fps: must be an integer between 1 and 240, got 9999" in r.stderr
    r = _cli(env, "config", "get", "camera.fps")
    assert r.returncode == AuthStatus.BAD_INPUT and "got 9999" in r.stderr
    r = _cli(env, "config", "set", "auth.timeout", "2")
    assert r.returncode == 0 and r.stdout.strip() == "auth.timeout = 2.0"
    assert "1 bad value" in r.stderr and "camera.fps" in r.stderr
    assert "auth.timeout" not in r.stderr and "Traceback" not in r.stderr
    r = _cli(env, "config", "reset", "camera.fps")
    assert r.returncode == 0 and r.stdout.strip() == "camera.fps = 30" and r.stderr == ""
    r = _cli(env, "config", "get")
    assert r.returncode == 0 and 'camera.source = "clip.mp4"' in r.stdout


def test_config_edit_without_an_editor(tmp_path: Path) -> None:
    """No $EDITOR and no nano/vi: a message naming what to set, not a traceback."""
    env = {k: v for k, v in os.environ.items() if k not in ("EDITOR", "VISUAL")}
    env.update(FACEUNLOCK_CONFIG=str(tmp_path / "c.toml"), PATH=str(tmp_path / "nothing"))
    r = _cli(env, "config", "edit")
    assert r.returncode == AuthStatus.BAD_INPUT and "Traceback" not in r.stderr
    assert "no text editor found" in r.stderr and "EDITOR" in r.stderr
    env["EDITOR"] = "no-such-editor -w"
    r = _cli(env, "config", "edit")
    assert r.returncode == AuthStatus.BAD_INPUT and "'no-such-editor' is not" in r.stderr
    # an editor that leaves a bad value: every bad key is named, with how to fix it
    fake = tmp_path / "bin" / "ed-bad"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nprintf \'[auth]\\nk = 0\\n\' > "$1"\n')
    fake.chmod(0o755)
    env["EDITOR"] = str(fake)
    r = _cli(env, "config", "edit")
    assert r.returncode == AuthStatus.BAD_INPUT
    assert "auth.k: must be an integer between 1 and 10, got 0" in r.stderr
    assert "config reset KEY" in r.stderr


def test_config_help_lists_every_key(capsys: pytest.CaptureFixture[str]) -> None:
    from faceunlock.config import KEYS

    with pytest.raises(SystemExit):
        main(["config", "--help"])
    out = capsys.readouterr().out
    for key in KEYS[1:]:
        assert key in out
    assert "auth.timeout           number, default 3.0; 0.5 to 30" in out
    rc, _, err = _run(capsys, "config", "set", "bogus", "1")
    assert rc == AuthStatus.BAD_INPUT and "the keys are camera.source," in err


def test_bench_dlib_without_dlib_says_so(tmp_path: Path) -> None:
    """`bench --dlib` where dlib cannot be imported: a clear error before any timing, not a
    table that silently leaves dlib out."""
    code = ("import sys; sys.modules['dlib'] = None; from faceunlock.cli import main; "
            "sys.exit(main(['bench', '--dlib', '--no-cold', '--repeats', '1']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == AuthStatus.BAD_INPUT and r.stdout == ""
    assert "--dlib: dlib-bin is not installed" in r.stderr and "pip install dlib-bin" in r.stderr
    assert "bench: timing" not in r.stderr


def test_progress_bar_leaves_no_stale_characters(monkeypatch: pytest.MonkeyPatch) -> None:
    """A redraw shorter than the last one (the rate went from 136.5/s to 36.5/s) covers it
    completely: the terminal showed `36.5/s/s`."""
    import io

    from faceunlock.engine import batch

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    clock = iter([0.0, 0.01, 100.0, 200.0, 300.0])  # fast first, then slow: shorter rates
    monkeypatch.setattr(batch.time, "monotonic", lambda: next(clock))
    out = Tty()
    assert list(batch.progress(list(range(17)), "embed", out)) == list(range(17))
    draws = out.getvalue().rstrip("\n").split("\r")[1:]
    assert len(draws) == 3
    assert draws[0].endswith("100.0/s") and draws[1].rstrip().endswith("0.1/s")
    for before, after in itertools.pairwise(draws):
        assert len(after) >= len(before)  # what the terminal shows is exactly `after`


@pytest.mark.parametrize("verb", ["auth", "test", "calibrate"])
def test_camera_verbs_explain_every_option(verb: str) -> None:
    """Every option of the camera verbs has help text (--source, --timeout, --json had none)."""
    from faceunlock.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser = sub.choices[verb]
    for action in parser._actions:
        assert action.help, f"{verb} {action.option_strings} has no help"
    assert "camera index" in parser.format_help()
