"""Every config key is declared once (faceunlock.config.key): these tests walk the declarations,
so a key added later is covered without touching them."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from faceunlock import config as C
from faceunlock.cli import main
from faceunlock.errors import ConfigError

SPECS = C.SCHEMA.keys


@pytest.fixture(autouse=True)
def _no_config_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACEUNLOCK_CONFIG", raising=False)


def _other_value(key: str, spec: C.Key) -> C.Value:
    """A valid value of ``key`` that is not its default (with the other keys' defaults)."""
    if spec.kind is bool:
        return not spec.default
    if spec.choices:
        return next(c for c in spec.choices if c != spec.default)
    if spec.kind is str:
        return 'some "odd" text, C:\\path\twith tab, é'
    assert spec.lo is not None and spec.hi is not None, key
    for v in (spec.lo, spec.hi, spec.default + 1, (spec.lo + spec.hi) / 2):
        v = spec.kind(v)
        if v == spec.default:
            continue
        try:
            C.config_set(C.Config(), key, v)
        except ConfigError:
            continue
        return v
    raise AssertionError(f"no other valid value for {key}")


def test_every_key_is_declared_with_help_and_a_valid_default() -> None:
    assert list(C.KEYS) == ["schema_version", *SPECS]
    for key, spec in SPECS.items():
        assert spec.help.strip(), key
        assert isinstance(spec.default, spec.kind), key
        section, name = key.split(".")
        cls = C.SCHEMA.sections[section]
        assert getattr(cls, name) == spec.default  # the class attribute is the default
        assert getattr(cls(), name) == spec.default
        # the default passes its own validation, set explicitly too
        assert C.config_get(C.config_set(C.Config(), key, spec.default), key) == spec.default
        for other in (spec.lo_key, spec.hi_key):
            assert other is None or other in C.keys_of(cls), key


def test_config_help_lists_every_key_with_type_default_and_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as ei:
        main(["config", "--help"])
    assert ei.value.code == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for row in C.describe_keys():
        spec = SPECS[row["key"]]
        head = f"  {row['key']:<22} {row['type']}, default {row['default']}; {row['allowed']}"
        assert head in lines, row["key"]
        assert lines[lines.index(head) + 1].strip() == spec.help
        assert tomllib.loads(f"v = {row['default']}")["v"] == spec.default
    assert [r["key"] for r in C.describe_keys()] == list(SPECS)


def test_unknown_key_lists_the_valid_keys() -> None:
    with pytest.raises(ConfigError) as ei:
        C.config_get(C.Config(), "nothing.like.it")
    msg = str(ei.value)
    assert msg.startswith("unknown key 'nothing.like.it'; the keys are ")
    assert msg.endswith(", ".join(SPECS))
    with pytest.raises(ConfigError) as ei:
        C.config_from_dict({"zzzz": {"a": 1}})
    assert str(ei.value).endswith("the sections are " + ", ".join(C.SCHEMA.sections))


@pytest.mark.parametrize("key", list(SPECS))
def test_round_trip_of_every_key(key: str, tmp_path: Path) -> None:
    value = _other_value(key, SPECS[key])
    cfg = C.config_set(C.Config(), key, value)
    p = C.save_config(cfg, tmp_path / "c.toml")
    assert C.load_config(p) == cfg
    assert C.config_get(C.load_config(p), key) == value
    # the same value through the one-line edit of a file with a bad value elsewhere
    bad = tmp_path / "bad.toml"
    other = "[general]\ndisabled = 3\n" if key != "general.disabled" else "[auth]\nk = 0\n"
    bad.write_text("# kept\n" + other)
    cf = C.set_in_file(key, value, bad)
    assert C.config_get(cf.config, key) == value and len(cf.problems) == 1
    assert "# kept" in bad.read_text()
    # and as text, the way `config set KEY VALUE` gets it
    text = str(value).lower() if isinstance(value, bool) else str(value)
    assert C.config_get(C.config_set(C.Config(), key, text), key) == value


def _numeric() -> list[str]:
    return [k for k, s in SPECS.items() if s.kind in (int, float) and not s.choices]


@pytest.mark.parametrize("key", _numeric())
def test_out_of_range_names_the_key_and_the_range(key: str) -> None:
    spec = SPECS[key]
    assert spec.lo is not None and spec.hi is not None
    what = "an integer" if spec.kind is int else "a number"
    for v in (spec.lo - 1, spec.hi + 1):
        v = spec.kind(v)
        with pytest.raises(ConfigError) as ei:
            C.config_set(C.Config(), key, v)
        assert str(ei.value) == (
            f"{key}: must be {what} between {spec.lo:g} and {spec.hi:g}, got {v!r}")
    assert C.value_range(key) == (spec.kind, spec.lo, spec.hi)


@pytest.mark.parametrize("key", [k for k, s in SPECS.items() if s.choices])
def test_a_value_not_among_the_choices_lists_them(key: str) -> None:
    spec = SPECS[key]
    bad: C.Value = "nope" if spec.kind is str else 7
    with pytest.raises(ConfigError) as ei:
        C.config_set(C.Config(), key, bad)
    msg = str(ei.value)
    assert msg.startswith(f"{key}: ") and ", ".join(str(c) for c in spec.choices) in msg


_WRONG = {bool: ("1", "must be true or false, got 1"),
          int: ('"ten"', "must be an integer, got 'ten'"),
          float: ("true", "must be a number, got True"),
          str: ("5", "must be a string, got 5")}


@pytest.mark.parametrize("key", list(SPECS))
def test_bad_types_in_the_file_say_what_is_expected(key: str, tmp_path: Path) -> None:
    section, name = key.split(".")
    literal, message = _WRONG[SPECS[key].kind]
    p = tmp_path / "c.toml"
    p.write_text(f"[{section}]\n{name} = {literal}\n")
    with pytest.raises(ConfigError) as ei:
        C.load_config(p)
    assert str(ei.value) == f"{p}: {key}: {message}"
    assert C.read_config_file(p).problems == {key: f"{key}: {message}"}


def test_bad_text_for_a_typed_key() -> None:
    with pytest.raises(ConfigError, match=r"^camera\.fps: must be an integer, got '3\.5'$"):
        C.config_set(C.Config(), "camera.fps", "3.5")
    with pytest.raises(ConfigError, match=r"^auth\.snapshots: must be true or false"):
        C.config_set(C.Config(), "auth.snapshots", "perhaps")


def test_a_section_field_must_be_declared_with_key() -> None:
    @dataclasses.dataclass(frozen=True)
    class Plain(C.Section):
        SECTION = "plain"
        x: int = 3

    with pytest.raises(TypeError, match=r"Plain\.x: declare it with faceunlock\.config\.key"):
        Plain()

    @dataclasses.dataclass(frozen=True)
    class Mistyped(C.Section):
        SECTION = "mistyped"
        x: float = C.key(3, "an int default on a float key")  # type: ignore[assignment]

    with pytest.raises(TypeError, match=r"Mistyped\.x: annotated float, but its default 3"):
        Mistyped()


def test_the_engine_takes_its_defaults_from_the_declarations() -> None:
    from faceunlock.engine.auth import AuthParams
    from faceunlock.engine.enrollment import EnrolParams
    from faceunlock.engine.quality import DEFAULT_DARK_FRACTION, DEFAULT_DARK_LEVEL

    auth = C.AuthConfig()
    p = AuthParams()
    assert (p.timeout, p.k, p.n, p.dark_level, p.dark_fraction) == (
        auth.timeout, auth.k, auth.n, auth.dark_level, auth.dark_fraction)
    e = EnrolParams()
    assert (e.anchors, e.dark_level, e.dark_fraction) == (
        C.EnrolConfig().anchors, auth.dark_level, auth.dark_fraction)
    assert (auth.dark_level, auth.dark_fraction) == (DEFAULT_DARK_LEVEL, DEFAULT_DARK_FRACTION)


def _modules_after(code: str) -> str:
    r = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                       timeout=60, check=True)
    return r.stdout.strip()


def test_reading_never_imports_the_toml_writer(tmp_path: Path) -> None:
    """tomli_w is imported where a file is written, never by the PAM helper or a read."""
    assert _modules_after(
        "import faceunlock.unlock.pam_helper, sys; print('tomli_w' in sys.modules)") == "False"
    p = tmp_path / "c.toml"
    p.write_text("[auth]\ntimeout = 2.0\n")
    read = (f"import sys; from faceunlock import config as C; C.load_config({str(p)!r}); "
            f"C.read_config_file({str(p)!r}); C.describe_keys(); ")
    assert _modules_after(read + "print('tomli_w' in sys.modules)") == "False"
    assert _modules_after(
        read + f"C.save_config(C.Config(), {str(p)!r}); print('tomli_w' in sys.modules)"
    ) == "True"


def test_the_trainer_config_uses_the_same_declarations(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from faceunlock.errors import InputError
    from faceunlock.training import trainer as T

    assert T.TrainModelConfig.SECTION == "model" and not hasattr(T, "ModelConfig")
    for k, spec in T.TRAIN_SCHEMA.keys.items():
        assert spec.help.strip(), k
    assert T.TrainConfig() == T.TrainConfig.from_dict({})
    assert "sampler.batches_per_epoch" in T.describe_keys()
    p = tmp_path / "t.toml"
    for text, message in [
        ("[sampler]\np = 0\n", "sampler.p: must be an integer >= 1, got 0"),
        ('[loss]\nkind = "hinge"\n', "loss.kind: 'hinge' is not one of triplet, contrastive, "
         "arcface"),
        ("[optim]\nlr = \"fast\"\n", "optim.lr: must be a number, got 'fast'"),
        ("[optim]\nlrr = 1.0\n", "unknown key 'optim.lrr' (did you mean 'optim.lr'?)"),
        ("[augment]\nflip_p = 1.5\n", "augment.flip_p: must be a number between 0 and 1, "
         "got 1.5"),
    ]:
        p.write_text(text)
        with pytest.raises(InputError) as ei:
            T.load_config(p)
        assert str(ei.value) == f"config {p}: {message}"
    p.write_text("[optim]\nlr = 1\n[run]\nout_dir = \"out\"\n")
    cfg = T.load_config(p)
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.run.out_dir == str(tmp_path / "out")
