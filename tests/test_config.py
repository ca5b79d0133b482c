from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path

import pytest

from faceunlock import config as config_mod
from faceunlock.config import (
    KEYS,
    AuthConfig,
    Config,
    config_get,
    config_items,
    config_set,
    load_config,
    save_config,
    to_toml,
)
from faceunlock.errors import ConfigError
from faceunlock.paths import config_path


@pytest.fixture(autouse=True)
def _no_config_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACEUNLOCK_CONFIG", raising=False)


DEFAULTS = {
    "schema_version": 1,
    "camera.source": "0",
    "camera.width": 640,
    "camera.height": 480,
    "camera.fps": 30,
    "camera.rotation": 0,
    "detector.min_face": 100,
    "detector.max_face": 400,
    "model.precision": "auto",
    "auth.timeout": 3.0,
    "auth.k": 2,
    "auth.n": 3,
    "auth.security_level": "balanced",
    "auth.max_failures": 5,
    "auth.lockout_seconds": 60,
    "auth.dark_level": 40,
    "auth.dark_fraction": 0.95,
    "auth.snapshots": False,
    "enrol.anchors": 10,
    "liveness.level": "passive",
    "liveness.challenge_seconds": 4.0,
    "liveness.challenges": "turn,blink",
    "watcher.enabled": True,
    "watcher.backend": "auto",
    "general.disabled": False,
}


def test_defaults() -> None:
    assert dict(config_items(Config())) == DEFAULTS
    assert list(KEYS) == list(DEFAULTS)


def test_config_path_xdg_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("FACEUNLOCK_CONFIG", raising=False)
    assert config_path() == tmp_path / "xdg" / "faceunlock" / "config.toml"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/ignored")
    assert config_path() == Path.home() / ".config" / "faceunlock" / "config.toml"
    monkeypatch.setenv("FACEUNLOCK_CONFIG", str(tmp_path / "custom.toml"))
    assert config_path() == tmp_path / "custom.toml"


def test_missing_file_gives_defaults() -> None:
    assert not config_path().exists()
    assert load_config() == Config()


def test_round_trip_defaults_and_changes(tmp_path: Path) -> None:
    path = save_config(Config())
    assert path == config_path() and path.is_file()
    assert load_config() == Config()
    cfg = Config()
    for key, text in [
        ("camera.source", 'C:\\odd "path"\twith\ttabs'),
        ("camera.rotation", "270"),
        ("auth.timeout", "2.5"),
        ("auth.dark_fraction", "0.9"),
        ("auth.snapshots", "yes"),
        ("watcher.backend", "gnome"),
        ("general.disabled", "true"),
    ]:
        cfg = config_set(cfg, key, text)
    out = tmp_path / "sub" / "c.toml"
    save_config(cfg, out)
    assert load_config(out) == cfg
    data = tomllib.loads(out.read_text())
    assert data["schema_version"] == 1
    assert data["camera"]["source"] == 'C:\\odd "path"\twith\ttabs'
    assert data["auth"]["timeout"] == 2.5


def test_partial_file_fills_defaults(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text("[auth]\ntimeout = 5\n")  # an int where a float is expected is fine
    cfg = load_config(p)
    assert cfg.auth.timeout == 5.0 and isinstance(cfg.auth.timeout, float)
    assert cfg.camera == Config().camera


def test_get_and_set() -> None:
    cfg = Config()
    new = config_set(cfg, "auth.timeout", "2.5")
    assert config_get(new, "auth.timeout") == 2.5
    assert config_get(cfg, "auth.timeout") == 3.0  # the original is untouched
    assert config_get(config_set(cfg, "camera.source", "/dev/video2"), "camera.source") == (
        "/dev/video2"
    )
    assert config_get(config_set(cfg, "auth.snapshots", "on"), "auth.snapshots") is True
    assert config_get(config_set(cfg, "auth.n", 5), "auth.n") == 5  # typed values too
    assert config_get(cfg, "schema_version") == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.auth.k = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "key,value,message",
    [
        (
            "auth.security_level",
            "fast",
            "auth.security_level: 'fast' is not one of convenient, balanced, secure",
        ),
        ("auth.k", "5", "auth.k: must be an integer between 1 and n (3), got 5"),
        ("auth.n", "1", "auth.n: must be an integer between k (2) and 10, got 1"),
        ("auth.n", "11", "auth.n: must be an integer between 1 and 10, got 11"),
        ("auth.k", "two", "auth.k: must be an integer, got 'two'"),
        ("auth.timeout", "0.1", "auth.timeout: must be a number between 0.5 and 30, got 0.1"),
        ("auth.timeout", "31", "auth.timeout: must be a number between 0.5 and 30, got 31.0"),
        ("auth.timeout", "soon", "auth.timeout: must be a number, got 'soon'"),
        ("auth.timeout", "nan", "auth.timeout: must be a finite number, got 'nan'"),
        ("auth.snapshots", "maybe", "auth.snapshots: must be true or false, got 'maybe'"),
        ("enrol.anchors", "2", "enrol.anchors: must be an integer between 3 and 50, got 2"),
        ("enrol.anchors", "51", "enrol.anchors: must be an integer between 3 and 50, got 51"),
        ("camera.rotation", "45", "camera.rotation: must be one of 0, 90, 180, 270, got 45"),
        ("camera.width", "640.5", "camera.width: must be an integer, got '640.5'"),
        ("camera.source", "  ", "camera.source: must not be empty"),
        (
            "watcher.backend",
            "kde",
            "watcher.backend: 'kde' is not one of auto, logind, freedesktop, gnome, mate",
        ),
        (
            "detector.min_face",
            "500",
            "detector.min_face: must be an integer between 20 and max_face (400), got 500",
        ),
        (
            "detector.max_face",
            "50",
            "detector.max_face: must be an integer between min_face (100) and 4096, got 50",
        ),
        (
            "auth.dark_level",
            "256",
            "auth.dark_level: must be an integer between 0 and 255, got 256",
        ),
        ("schema_version", "2", "schema_version: is managed by FaceUnlock and cannot be set"),
    ],
)
def test_validation_messages(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as ei:
        config_set(Config(), key, value)
    assert str(ei.value) == message


def test_unknown_keys_suggest_the_nearest() -> None:
    with pytest.raises(ConfigError) as ei:
        config_set(Config(), "auth.timout", "2")
    assert str(ei.value) == "unknown key 'auth.timout' (did you mean 'auth.timeout'?)"
    with pytest.raises(ConfigError, match=r"did you mean 'auth\.timeout'"):
        config_get(Config(), "timeout")
    with pytest.raises(ConfigError) as ei:
        config_get(Config(), "zzz.qqq")
    assert str(ei.value).startswith("unknown key 'zzz.qqq'; the keys are camera.source, ")
    assert all(k in str(ei.value) for k in KEYS[1:])
    with pytest.raises(ConfigError, match="'auth' is a section, not a key"):
        config_get(Config(), "auth")


def test_constructing_an_invalid_section_raises() -> None:
    with pytest.raises(ConfigError, match=r"auth\.k: must be an integer between 1 and n \(3\)"):
        AuthConfig(k=5)
    with pytest.raises(ConfigError, match=r"auth\.snapshots: must be true or false"):
        AuthConfig(snapshots=1)  # type: ignore[arg-type]


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(text)
    return p


def test_file_errors_name_the_file_and_key(tmp_path: Path) -> None:
    p = _write(tmp_path, "schema_version = 1\n[auth]\ntimout = 2.0\n")
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert str(ei.value) == f"{p}: unknown key 'auth.timout' (did you mean 'auth.timeout'?)"

    p = _write(tmp_path, "[autth]\ntimeout = 2.0\n")
    with pytest.raises(ConfigError, match=r"unknown section 'autth' \(did you mean 'auth'\?\)"):
        load_config(p)

    p = _write(tmp_path, '[auth]\nsecurity_level = "fast"\n')
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert str(ei.value).startswith(f"{p}: auth.security_level: 'fast' is not one of")

    p = _write(tmp_path, "[auth]\nk = true\n")
    with pytest.raises(ConfigError, match=r"auth\.k: must be an integer, got True"):
        load_config(p)

    p = _write(tmp_path, "[auth]\nk = 4\nn = 3\n")
    with pytest.raises(ConfigError, match=r"auth\.k: must be an integer between 1 and n \(3\)"):
        load_config(p)

    p = _write(tmp_path, "auth = 3\n")
    with pytest.raises(ConfigError, match=r"auth: must be a table \(\[auth\]\)"):
        load_config(p)

    p = _write(tmp_path, "schema_version = 2\n")
    with pytest.raises(ConfigError, match="schema_version: 2 is newer"):
        load_config(p)


def test_bad_toml_names_file_and_line(tmp_path: Path) -> None:
    p = _write(tmp_path, "schema_version = 1\n\n[auth]\ntimeout 3.0\n")
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    msg = str(ei.value)
    assert msg.startswith(f"{p}: invalid TOML")
    assert "line 4" in msg


def test_unreadable_files(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_bytes(b"[auth]\ntimeout = \xff\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(p)
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_atomic_write_keeps_old_file_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = tmp_path / "config.toml"
    save_config(config_set(Config(), "auth.timeout", "7"), p)
    before = p.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(config_mod.os, "replace", broken_replace)
    with pytest.raises(ConfigError, match="No space left on device") as ei:
        save_config(Config(), p)
    assert str(p) in str(ei.value)
    assert p.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["config.toml"]  # temp file cleaned up

    monkeypatch.undo()

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(config_mod.os, "fsync", broken_fsync)
    with pytest.raises(ConfigError, match="Input/output error"):
        save_config(Config(), p)
    assert p.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["config.toml"]


def test_save_follows_symlink_and_keeps_mode(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "faceunlock.toml"
    real.parent.mkdir()
    real.write_text("")
    real.chmod(0o600)
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    save_config(config_set(Config(), "enrol.anchors", "20"), link)
    assert link.is_symlink()
    assert load_config(real).enrol.anchors == 20
    assert real.stat().st_mode & 0o777 == 0o600


def test_toml_text_is_stable() -> None:
    text = to_toml(Config())
    assert text.splitlines()[1] == "schema_version = 1"
    assert '[camera]\nsource = "0"\nwidth = 640' in text
    assert "timeout = 3.0" in text and "snapshots = false" in text


def test_model_precision_reaches_the_pipeline() -> None:
    from faceunlock.app import service
    from faceunlock.paths import models_dir

    assert service.pipeline_settings(Config()).precision == "auto"
    cfg = config_set(Config(), "model.precision", "fp32")
    pipe = service.pipeline_for(cfg)
    assert pipe.encoder.path == models_dir() / "encoder.onnx"
    with pytest.raises(ConfigError, match=r"model\.precision"):
        config_set(Config(), "model.precision", "fp16")


@pytest.mark.parametrize("opener", ["[", "{a = "])
def test_deeply_nested_config_is_a_config_error(tmp_path: Path, opener: str) -> None:
    """100,000 nested arrays (or inline tables): before, RecursionError out of tomllib (a
    traceback, exit 1)."""
    p = tmp_path / "deep.toml"
    closer = "]" if opener == "[" else "}"
    p.write_text("x = " + opener * 100_000 + closer * 100_000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply") as ei:
        load_config(p)
    assert str(p) in str(ei.value)


def test_config_size_is_bounded(tmp_path: Path) -> None:
    """A config over 1 MiB is refused unread (before, /dev/zero as the config was read until
    memory ran out); a comment-padded file just under the bound still loads."""
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * config_mod.MAX_CONFIG_BYTES + "\n")
    with pytest.raises(ConfigError, match="larger than 1024 KiB"):
        load_config(big)
    ok = tmp_path / "ok.toml"
    ok.write_text("# " + "x" * (config_mod.MAX_CONFIG_BYTES - 100) + "\n[auth]\ntimeout = 2.0\n")
    assert load_config(ok).auth.timeout == 2.0
    if os.path.exists("/dev/zero"):
        with pytest.raises(ConfigError, match="larger than"):
            load_config("/dev/zero")


def test_value_range_is_the_rule_table() -> None:
    assert config_mod.value_range("auth.timeout") == (float, 0.5, 30.0)
    assert config_mod.value_range("enrol.anchors") == (int, 3, 50)
    with pytest.raises(KeyError):
        config_mod.value_range("auth.security_level")


# ---------------------------------------------------------------- a file with bad values

_BAD = 'schema_version = 1\n# my notes\n[auth]\ntimeout = "abc"\nk = 9\n[camera]\nfps = 9999\n'


def test_a_bad_file_is_read_key_by_key(tmp_path: Path) -> None:
    p = _write(tmp_path, _BAD + 'source = "clip.mp4"\n[enrol]\nancors = 3\n')
    cf = config_mod.read_config_file(p)
    assert set(cf.problems) == {"auth.timeout", "auth.k", "camera.fps", "enrol.ancors"}
    assert cf.problems["auth.timeout"] == "auth.timeout: must be a number, got 'abc'"
    assert cf.config.camera.source == "clip.mp4"  # the good values are kept
    assert cf.config.auth.timeout == 3.0 and cf.config.camera.fps == 30  # bad ones: defaults
    with pytest.raises(ConfigError):  # the strict reader still refuses the file
        load_config(p)
    assert config_mod.read_config_file(tmp_path / "missing.toml").problems == {}


def test_set_fixes_a_bad_key_and_keeps_the_rest(tmp_path: Path) -> None:
    p = _write(tmp_path, _BAD)
    cf = config_mod.set_in_file("auth.timeout", "2.5", p)
    assert set(cf.problems) == {"auth.k", "camera.fps"}  # the others stay as they were
    assert cf.config.auth.timeout == 2.5
    text = p.read_text()
    assert "# my notes" in text and "k = 9" in text and "fps = 9999" in text
    with pytest.raises(ConfigError, match=r"auth\.n: must be an integer between 1 and 10, got 0"):
        config_mod.set_in_file("auth.n", "0", p)  # a bad new value is still refused
    config_mod.reset_in_file("camera.fps", p)
    cf = config_mod.set_in_file("auth.k", "3", p)
    assert cf.problems == {}
    assert load_config(p).auth.k == 3 and load_config(p).camera.fps == 30
    # a key missing from its section, and a section missing from the file, are added
    p = _write(tmp_path, "[auth]\nk = 20\n")
    config_mod.set_in_file("watcher.backend", "gnome", p)
    cf = config_mod.set_in_file("auth.timeout", "4", p)
    assert cf.config.watcher.backend == "gnome" and cf.config.auth.timeout == 4.0
    assert set(cf.problems) == {"auth.k"}


def test_set_refuses_what_it_cannot_edit_in_place(tmp_path: Path) -> None:
    p = _write(tmp_path, 'auth = { k = 9, timeout = 2.0 }\n')
    before = p.read_bytes()
    with pytest.raises(ConfigError, match="config edit"):
        config_mod.set_in_file("auth.timeout", "2.5", p)
    assert p.read_bytes() == before


def test_every_key_is_described() -> None:
    rows = config_mod.describe_keys()
    assert [r["key"] for r in rows] == list(KEYS[1:])
    assert all(r["help"] and r["allowed"] and r["default"] for r in rows)
    timeout = next(r for r in rows if r["key"] == "auth.timeout")
    assert timeout == {"key": "auth.timeout", "type": "number", "default": "3.0",
                       "allowed": "0.5 to 30", "help": timeout["help"]}
