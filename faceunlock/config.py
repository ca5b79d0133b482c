"""FaceUnlock configuration: frozen dataclasses, TOML in and out, validation with precise messages.

The file (``faceunlock.paths.config_path()``) looks like::

    schema_version = 1

    [camera]
    source = "0"        # device index, /dev/videoN, a video file or an image folder
    ...

Every key has one default, defined here and nowhere else. Sections validate themselves on
construction, so an invalid :class:`Config` cannot exist; every problem raises
:class:`~faceunlock.errors.ConfigError` with a message naming the key and the allowed values.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceunlock.errors import ConfigError
from faceunlock.fileio import atomic_write_bytes
from faceunlock.paths import config_path

SCHEMA_VERSION = 1
#: the largest config file read (the full file, every key written, is under 1 KiB)
MAX_CONFIG_BYTES = 1 << 20
SECURITY_LEVELS = ("convenient", "balanced", "secure")
WATCHER_BACKENDS = ("auto", "logind", "freedesktop", "gnome", "mate")
ROTATIONS = (0, 90, 180, 270)
PRECISIONS = ("auto", "int8", "fp32")
LIVENESS_LEVELS = ("off", "passive", "active")

Value = bool | int | float | str


@dataclass(frozen=True)
class _Rule:
    """What one key accepts. ``lo_key``/``hi_key`` name a key of the same section as a bound."""

    kind: type
    lo: float | None = None
    hi: float | None = None
    choices: tuple[Value, ...] = ()
    lo_key: str | None = None
    hi_key: str | None = None
    nonempty: bool = False


_RULES: dict[str, _Rule] = {
    "camera.source": _Rule(str, nonempty=True),
    "camera.width": _Rule(int, 32, 8192),
    "camera.height": _Rule(int, 32, 8192),
    "camera.fps": _Rule(int, 1, 240),
    "camera.rotation": _Rule(int, choices=ROTATIONS),
    "detector.min_face": _Rule(int, 20, 4096, hi_key="max_face"),
    "detector.max_face": _Rule(int, 20, 4096, lo_key="min_face"),
    "model.precision": _Rule(str, choices=PRECISIONS),
    "auth.timeout": _Rule(float, 0.5, 30.0),
    "auth.k": _Rule(int, 1, 10, hi_key="n"),
    "auth.n": _Rule(int, 1, 10, lo_key="k"),
    "auth.security_level": _Rule(str, choices=SECURITY_LEVELS),
    "auth.max_failures": _Rule(int, 1, 100),
    "auth.lockout_seconds": _Rule(int, 0, 86400),
    "auth.dark_level": _Rule(int, 0, 255),
    "auth.dark_fraction": _Rule(float, 0.05, 1.0),
    "auth.snapshots": _Rule(bool),
    "enrol.anchors": _Rule(int, 3, 50),
    "liveness.level": _Rule(str, choices=LIVENESS_LEVELS),
    "watcher.enabled": _Rule(bool),
    "watcher.backend": _Rule(str, choices=WATCHER_BACKENDS),
    "general.disabled": _Rule(bool),
}

#: one line per key for `faceunlock config --help` (what it means to a user)
_HELP: dict[str, str] = {
    "camera.source": "camera index, /dev/videoN, a video file or an image folder",
    "camera.width": "capture width in pixels",
    "camera.height": "capture height in pixels",
    "camera.fps": "frames per second asked of the camera",
    "camera.rotation": "clockwise degrees the image is turned (a sideways camera)",
    "detector.min_face": "smallest face looked for, in pixels (face box height)",
    "detector.max_face": "largest face looked for, in pixels",
    "model.precision": "face encoder: auto (int8 when installed), int8 or fp32; re-enrol after "
    "a change",
    "auth.timeout": "seconds one unlock attempt looks for your face",
    "auth.k": "matching frames needed to unlock ...",
    "auth.n": "... among the last n frames",
    "auth.security_level": "how strict the match is: convenient, balanced or secure",
    "auth.max_failures": "failed attempts in a row before face unlock pauses",
    "auth.lockout_seconds": "how long it pauses (the password always works)",
    "auth.dark_level": "grey level below which a pixel counts as dark",
    "auth.dark_fraction": "share of dark pixels that makes a frame too dark to use",
    "auth.snapshots": "keep a picture of each failed attempt",
    "enrol.anchors": "face samples taken at enrolment",
    "liveness.level": "photo and screen checks: off, passive or active (= passive for now)",
    "watcher.enabled": "unlock the lock screen when your face is seen",
    "watcher.backend": "lock-screen service: auto, logind, freedesktop, gnome or mate",
    "general.disabled": "turn face unlock off everywhere",
}


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def value_range(key: str) -> tuple[type, float, float]:
    """``(int or float, lo, hi)``: the static range a numeric key accepts (for command-line
    options that override it, e.g. ``auth --timeout`` and ``auth.timeout``)."""
    rule = _RULES.get(key)
    if rule is None or rule.kind not in (int, float) or rule.lo is None or rule.hi is None:
        raise KeyError(f"{key!r} is not a numeric key with a range")
    return rule.kind, rule.lo, rule.hi


def _fmt(v: float) -> str:
    return f"{v:g}"


def _check_type(key: str, rule: _Rule, value: object) -> Value:
    """Return ``value`` normalised to the key's type, or raise ConfigError."""
    if rule.kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: must be true or false, got {value!r}")
    if rule.kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: must be an integer, got {value!r}")
    if rule.kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{key}: must be a finite number, got {value!r}")
            return float(value)
        raise ConfigError(f"{key}: must be a number, got {value!r}")
    if isinstance(value, str):
        return value
    raise ConfigError(f"{key}: must be a string, got {value!r}")


def _check_static(key: str, rule: _Rule, value: Value) -> None:
    if rule.nonempty and isinstance(value, str) and not value.strip():
        raise ConfigError(f"{key}: must not be empty")
    if rule.choices and value not in rule.choices:
        allowed = ", ".join(str(c) for c in rule.choices)
        if isinstance(value, str):
            raise ConfigError(f"{key}: {value!r} is not one of {allowed}")
        raise ConfigError(f"{key}: must be one of {allowed}, got {value!r}")
    if rule.lo is not None and rule.hi is not None:
        assert isinstance(value, int | float)
        if not rule.lo <= value <= rule.hi:
            raise ConfigError(_range_message(key, rule, value, _fmt(rule.lo), _fmt(rule.hi)))


def _range_message(key: str, rule: _Rule, value: Value, lo: str, hi: str) -> str:
    what = "an integer" if rule.kind is int else "a number"
    return f"{key}: must be {what} between {lo} and {hi}, got {value!r}"


def _check_dynamic(key: str, rule: _Rule, value: Value, values: Mapping[str, Value]) -> None:
    if rule.lo_key is None and rule.hi_key is None:
        return
    assert isinstance(value, int | float) and rule.lo is not None and rule.hi is not None
    lo, lo_text = rule.lo, _fmt(rule.lo)
    hi, hi_text = rule.hi, _fmt(rule.hi)
    if rule.lo_key is not None:
        other = values[rule.lo_key]
        assert isinstance(other, int | float)
        lo, lo_text = other, f"{rule.lo_key} ({other})"
    if rule.hi_key is not None:
        other = values[rule.hi_key]
        assert isinstance(other, int | float)
        hi, hi_text = other, f"{rule.hi_key} ({other})"
    if not lo <= value <= hi:
        raise ConfigError(_range_message(key, rule, value, lo_text, hi_text))


def _validate_section(
    section: str, values: Mapping[str, object], first: str | None = None
) -> dict[str, Value]:
    """Type-check and range-check one section's values; return them normalised.

    ``first`` (a key of this section) is checked first, so a cross-key conflict blames it.
    """
    order = list(values)
    if first is not None and first in values:
        order.remove(first)
        order.insert(0, first)
    out: dict[str, Value] = {}
    for name in order:
        key = f"{section}.{name}"
        rule = _RULES[key]
        out[name] = _check_type(key, rule, values[name])
        _check_static(key, rule, out[name])
    for name in order:
        key = f"{section}.{name}"
        _check_dynamic(key, _RULES[key], out[name], out)
    return {name: out[name] for name in values}


class _Section:
    """Mixin: a frozen dataclass section that validates (and normalises) itself."""

    SECTION = ""

    def __post_init__(self) -> None:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        clean = _validate_section(self.SECTION, values)
        for name, v in clean.items():
            if v is not values[name]:
                object.__setattr__(self, name, v)


# --------------------------------------------------------------------------------------------
# The schema
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CameraConfig(_Section):
    """[camera] where frames come from and in which mode."""

    SECTION = "camera"
    source: str = "0"  # device index, /dev/videoN, a video file or an image folder
    width: int = 640
    height: int = 480
    fps: int = 30
    rotation: int = 0  # clockwise degrees: 0, 90, 180, 270


@dataclass(frozen=True)
class DetectorConfig(_Section):
    """[detector] face size limits in pixels (face box height)."""

    SECTION = "detector"
    min_face: int = 100
    max_face: int = 400


@dataclass(frozen=True)
class ModelConfig(_Section):
    """[model] which encoder runs: ``auto`` (the int8 one when installed), ``int8`` or ``fp32``
    (dlib's exact descriptors). Templates are tied to the encoder: re-enrol after a change."""

    SECTION = "model"
    precision: str = "auto"


@dataclass(frozen=True)
class AuthConfig(_Section):
    """[auth] the unlock decision: timeout, k-of-n voting, security level, lockout."""

    SECTION = "auth"
    timeout: float = 3.0  # seconds, 0.5–30
    k: int = 2  # matching frames needed ...
    n: int = 3  # ... among the last n (k ≤ n ≤ 10)
    security_level: str = "balanced"  # convenient, balanced, secure
    max_failures: int = 5
    lockout_seconds: int = 60
    dark_level: int = 40  # grey level below which a pixel counts as dark
    dark_fraction: float = 0.95  # a frame with this share of dark pixels is skipped
    snapshots: bool = False


@dataclass(frozen=True)
class EnrolConfig(_Section):
    """[enrol] enrolment."""

    SECTION = "enrol"
    anchors: int = 10  # 3–50


@dataclass(frozen=True)
class LivenessConfig(_Section):
    """[liveness] presentation-attack checks before a match is accepted: ``off``, ``passive``
    (MiniFASNet and the deny cues on the matched frames; see README "Liveness") or
    ``active``, which for now runs exactly the passive checks (the challenge is not built)."""

    SECTION = "liveness"
    level: str = "off"  # off, passive, active (= passive until the challenge exists)


@dataclass(frozen=True)
class WatcherConfig(_Section):
    """[watcher] lock-screen watcher."""

    SECTION = "watcher"
    enabled: bool = True
    backend: str = "auto"  # auto, logind, freedesktop, gnome, mate


@dataclass(frozen=True)
class GeneralConfig(_Section):
    """[general] global switches."""

    SECTION = "general"
    disabled: bool = False


@dataclass(frozen=True)
class Config:
    """The whole configuration. Immutable; change it with :func:`config_set`."""

    schema_version: int = SCHEMA_VERSION
    camera: CameraConfig = field(default_factory=CameraConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    enrol: EnrolConfig = field(default_factory=EnrolConfig)
    liveness: LivenessConfig = field(default_factory=LivenessConfig)
    watcher: WatcherConfig = field(default_factory=WatcherConfig)
    general: GeneralConfig = field(default_factory=GeneralConfig)

    def __post_init__(self) -> None:
        _check_schema_version(self.schema_version)


_SECTIONS: dict[str, type[_Section]] = {
    "camera": CameraConfig,
    "detector": DetectorConfig,
    "model": ModelConfig,
    "auth": AuthConfig,
    "enrol": EnrolConfig,
    "liveness": LivenessConfig,
    "watcher": WatcherConfig,
    "general": GeneralConfig,
}

KEYS: tuple[str, ...] = ("schema_version", *_RULES)


def _check_schema_version(v: object) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ConfigError(f"schema_version: must be a positive integer, got {v!r}")
    if v > SCHEMA_VERSION:
        raise ConfigError(
            f"schema_version: {v} is newer than this FaceUnlock understands "
            f"({SCHEMA_VERSION}); upgrade FaceUnlock or remove the file"
        )


# --------------------------------------------------------------------------------------------
# Keys: lookup, get, set
# --------------------------------------------------------------------------------------------


def _unknown(key: str, candidates: tuple[str, ...] | list[str] = KEYS, what: str = "key") -> str:
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    if not close:
        leaf = [c for c in candidates if c.rsplit(".", 1)[-1] == key.rsplit(".", 1)[-1]]
        close = leaf[:1]
    if close:
        return f"unknown {what} {key!r} (did you mean {close[0]!r}?)"
    names = [c for c in candidates if c != "schema_version"]
    return f"unknown {what} {key!r}; the {what}s are {', '.join(names)}"


def describe_keys() -> list[dict[str, str]]:
    """Every settable key with its type, default, allowed values and meaning, in file order
    (``faceunlock config --help``)."""
    defaults = Config()
    out = []
    for key, rule in _RULES.items():
        if rule.choices:
            allowed = ", ".join(str(c) for c in rule.choices)
        elif rule.kind is bool:
            allowed = "true, false"
        elif rule.lo is not None and rule.hi is not None:
            lo = rule.lo_key or _fmt(rule.lo)
            hi = rule.hi_key or _fmt(rule.hi)
            if rule.lo_key:
                lo = f"{rule.lo_key.split('.')[-1]} (>= {_fmt(rule.lo)})"
            if rule.hi_key:
                hi = f"{rule.hi_key.split('.')[-1]} (<= {_fmt(rule.hi)})"
            allowed = f"{lo} to {hi}"
        else:
            allowed = "any text" + (", not empty" if rule.nonempty else "")
        kind = {bool: "bool", int: "integer", float: "number", str: "text"}[rule.kind]
        out.append({"key": key, "type": kind, "default": _toml_value(config_get(defaults, key)),
                    "allowed": allowed, "help": _HELP.get(key, "")})
    return out


def _resolve(key: str) -> tuple[str, str]:
    """``"auth.timeout"`` -> ``("auth", "timeout")``; raises ConfigError for unknown keys."""
    key = key.strip()
    if key == "schema_version":
        return "", key
    if key in _SECTIONS:
        keys = ", ".join(k for k in _RULES if k.startswith(key + "."))
        raise ConfigError(f"{key!r} is a section, not a key; its keys are {keys}")
    if key not in _RULES:
        raise ConfigError(_unknown(key))
    section, name = key.split(".", 1)
    return section, name


def config_get(cfg: Config, key: str) -> Value:
    """The value of a dotted key, e.g. ``config_get(cfg, "auth.timeout") -> 3.0``."""
    section, name = _resolve(key)
    if not section:
        return cfg.schema_version
    value: Value = getattr(getattr(cfg, section), name)
    return value


def config_items(cfg: Config) -> list[tuple[str, Value]]:
    """Every ``(dotted key, value)`` pair, in file order (schema_version first)."""
    return [(k, config_get(cfg, k)) for k in KEYS]


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def parse_value(key: str, text: str) -> Value:
    """Parse the string ``text`` to the type of ``key`` (no range checks)."""
    section, _ = _resolve(key)
    if not section:
        raise ConfigError("schema_version: is managed by FaceUnlock and cannot be set")
    rule = _RULES[key.strip()]
    t = text.strip()
    if rule.kind is bool:
        if t.lower() in _TRUE:
            return True
        if t.lower() in _FALSE:
            return False
        raise ConfigError(f"{key}: must be true or false, got {text!r}")
    if rule.kind is int:
        if re.fullmatch(r"[+-]?\d+", t):
            return int(t)
        raise ConfigError(f"{key}: must be an integer, got {text!r}")
    if rule.kind is float:
        try:
            f = float(t)
        except ValueError:
            raise ConfigError(f"{key}: must be a number, got {text!r}") from None
        if not math.isfinite(f):
            raise ConfigError(f"{key}: must be a finite number, got {text!r}")
        return f
    return text


def config_set(cfg: Config, key: str, value: str | Value) -> Config:
    """A copy of ``cfg`` with ``key`` set; strings are parsed to the key's type.

    ``config_set(cfg, "auth.timeout", "2.5")``. Raises ConfigError naming the key when the key
    is unknown or the value is invalid (a cross-key conflict such as k > n blames ``key``).
    """
    section, name = _resolve(key)
    if not section:
        raise ConfigError("schema_version: is managed by FaceUnlock and cannot be set")
    parsed = parse_value(key, value) if isinstance(value, str) else value
    current = getattr(cfg, section)
    values = {f.name: getattr(current, f.name) for f in dataclasses.fields(current)}
    values[name] = parsed
    clean = _validate_section(section, values, first=name)
    new_section: Any = _SECTIONS[section](**clean)
    return dataclasses.replace(cfg, **{section: new_section})


# --------------------------------------------------------------------------------------------
# TOML in
# --------------------------------------------------------------------------------------------


def config_from_dict(data: Mapping[str, Any]) -> Config:
    """Build a Config from parsed TOML (``{"schema_version": 1, "auth": {...}, ...}``).

    Missing keys take their defaults; unknown sections or keys raise ConfigError.
    """
    version = data.get("schema_version", SCHEMA_VERSION)
    _check_schema_version(version)
    sections: dict[str, _Section] = {}
    for sname, table in data.items():
        if sname == "schema_version":
            continue
        if sname not in _SECTIONS:
            if isinstance(table, Mapping):
                raise ConfigError(_unknown(sname, list(_SECTIONS), "section"))
            raise ConfigError(_unknown(sname))
        if not isinstance(table, Mapping):
            raise ConfigError(f"{sname}: must be a table ([{sname}]), got {table!r}")
        cls = _SECTIONS[sname]
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        for k in table:
            if k not in names:
                raise ConfigError(_unknown(f"{sname}.{k}"))
        defaults = cls()
        values = {n: table.get(n, getattr(defaults, n)) for n in names}
        sections[sname] = cls(**values)
    return Config(schema_version=version, **sections)  # type: ignore[arg-type]


def _read_toml(p: Path) -> dict[str, Any] | None:
    """The parsed TOML of config file ``p`` (None when it does not exist); ConfigError naming
    the file when it cannot be read or is not TOML."""
    try:
        with open(p, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise ConfigError(f"{p}: is a directory, not a config file") from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot be read ({e.strerror})") from e
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{p}: larger than {MAX_CONFIG_BYTES >> 10} KiB, not a FaceUnlock config file"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not UTF-8 text (byte {e.start})") from e
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: invalid TOML: {e}") from e
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise ConfigError(f"{p}: invalid TOML: arrays or tables nested too deeply") from None


def load_config(path: str | Path | None = None) -> Config:
    """Read the config file (default :func:`faceunlock.paths.config_path`).

    A missing file gives the defaults. Unreadable files, files over :data:`MAX_CONFIG_BYTES`,
    invalid TOML (the message names the file, line and column) and invalid values raise
    ConfigError naming the file.
    """
    p = Path(path) if path is not None else config_path()
    data = _read_toml(p)
    if data is None:
        return Config()
    try:
        return config_from_dict(data)
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}") from e


@dataclass(frozen=True)
class ConfigFile:
    """A config file read key by key, so that one bad value does not hide the others.

    ``config`` has every good value of the file and the default in place of each bad one;
    ``problems`` maps each bad key (or section) to its message. The file is valid (what
    :func:`load_config` accepts) exactly when ``problems`` is empty.
    """

    path: Path
    config: Config
    problems: dict[str, str]
    data: dict[str, Any] | None  # the parsed TOML; None when the file does not exist


def _lenient_section(
    cls: type[_Section], table: Mapping[str, Any], problems: dict[str, str]
) -> _Section:
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    defaults = cls()
    values = {n: table.get(n, getattr(defaults, n)) for n in names}
    for _ in range(2 * len(names) + 1):
        try:
            return cls(**values)
        except ConfigError as e:
            key = str(e).split(":", 1)[0]
            name = key.split(".", 1)[-1]
            if name not in values:
                break
            if values[name] == getattr(defaults, name):
                # its default conflicts with another key (k against n): both take theirs
                linked = [n for n in names if _RULES[f"{cls.SECTION}.{n}"].lo_key
                          or _RULES[f"{cls.SECTION}.{n}"].hi_key]
                values.update({n: getattr(defaults, n) for n in linked})
            problems.setdefault(key, str(e))
            values[name] = getattr(defaults, name)
    return defaults


def read_config_file(path: str | Path | None = None) -> ConfigFile:
    """Read the config file leniently (see :class:`ConfigFile`). ConfigError only when the
    file cannot be read at all: unreadable, not TOML, or a newer schema_version."""
    p = Path(path) if path is not None else config_path()
    data = _read_toml(p)
    if data is None:
        return ConfigFile(p, Config(), {}, None)
    problems: dict[str, str] = {}
    version = data.get("schema_version", SCHEMA_VERSION)
    try:
        _check_schema_version(version)
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}") from e
    sections: dict[str, _Section] = {}
    for sname, table in data.items():
        if sname == "schema_version":
            continue
        if sname not in _SECTIONS:
            problems[sname] = (_unknown(sname, list(_SECTIONS), "section")
                               if isinstance(table, Mapping) else _unknown(sname))
            continue
        if not isinstance(table, Mapping):
            problems[sname] = f"{sname}: must be a table ([{sname}]), got {table!r}"
            continue
        cls = _SECTIONS[sname]
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        for k in table:
            if k not in names:
                problems[f"{sname}.{k}"] = _unknown(f"{sname}.{k}")
        sections[sname] = _lenient_section(cls, table, problems)
    return ConfigFile(p, Config(schema_version=version, **sections), problems, data)  # type: ignore[arg-type]


_HEADER = re.compile(r"\s*\[\s*([A-Za-z0-9_-]+)\s*\]\s*(#.*)?")


def _set_in_text(text: str, section: str, name: str, value: Value) -> str:
    """``text`` with ``name = value`` in its ``[section]`` (the line replaced, or added)."""
    lines = text.splitlines(keepends=True)
    new = f"{name} = {_toml_value(value)}\n"
    key_line = re.compile(rf"\s*{re.escape(name)}\s*=")
    current: str | None = None
    insert_at: int | None = None
    for i, line in enumerate(lines):
        m = _HEADER.fullmatch(line.rstrip("\r\n"))
        if m:
            current = m.group(1)
            if current == section and insert_at is None:
                insert_at = i + 1
            continue
        if line.lstrip().startswith("["):
            current = None
        elif current == section and key_line.match(line):
            lines[i] = new
            return "".join(lines)
    if insert_at is not None:
        lines.insert(insert_at, new)
    else:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines += ["\n", f"[{section}]\n", new]
    return "".join(lines)


def set_in_file(key: str, value: str | Value, path: str | Path | None = None) -> ConfigFile:
    """Set ``key`` in the config file and return the file as read back.

    A valid file is rewritten whole, as :func:`save_config` does. A file with bad values
    elsewhere is changed on that one line only (its other keys, bad ones included, and its
    comments stay as they were), so the key that is bad can be fixed this way too; the
    returned :class:`ConfigFile` lists what is still bad. The value itself must be valid
    (ConfigError naming the key otherwise).
    """
    cf = read_config_file(path)
    section, name = _resolve(key)
    if not section:
        raise ConfigError("schema_version: is managed by FaceUnlock and cannot be set")
    new_cfg = config_set(cf.config, key, value)  # checks the value (bad others: defaults)
    parsed = config_get(new_cfg, key)
    if not cf.problems:
        save_config(new_cfg, cf.path)
        return read_config_file(cf.path)
    p = Path(os.path.realpath(cf.path))
    text = p.read_text(encoding="utf-8")
    new_text = _set_in_text(text, section, name, parsed)
    expected = dict(cf.data or {})
    table = expected.get(section, {})
    try:
        expected[section] = {**table, name: parsed}
        ok = tomllib.loads(new_text) == expected
    except (TypeError, tomllib.TOMLDecodeError):
        ok = False
    if not ok:
        raise ConfigError(
            f"{cf.path}: {key} cannot be changed in place in this file (it is written in a "
            "form this command does not edit); change it with `faceunlock config edit`"
        )
    mode = stat.S_IMODE(p.stat().st_mode)
    try:
        atomic_write_bytes(p, new_text.encode("utf-8"), mode=mode)
    except OSError as e:
        raise ConfigError(f"{p}: cannot write config file ({e.strerror or e})") from e
    return read_config_file(cf.path)


def reset_in_file(key: str, path: str | Path | None = None) -> ConfigFile:
    """:func:`set_in_file` with the key's default."""
    return set_in_file(key, config_get(Config(), key), path)


# --------------------------------------------------------------------------------------------
# TOML out
# --------------------------------------------------------------------------------------------

_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _toml_string(s: str) -> str:
    out = []
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_value(v: Value) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        text = repr(v)
        return text if any(c in text for c in ".eE") else text + ".0"
    return _toml_string(v)


def to_toml(cfg: Config) -> str:
    """The config as TOML text (every key written, defaults included)."""
    lines = [
        "# FaceUnlock configuration. Edit it, or use `faceunlock config set KEY VALUE`.",
        f"schema_version = {cfg.schema_version}",
    ]
    for sname in _SECTIONS:
        section = getattr(cfg, sname)
        lines += ["", f"[{sname}]"]
        for f in dataclasses.fields(section):
            lines.append(f"{f.name} = {_toml_value(getattr(section, f.name))}")
    return "\n".join(lines) + "\n"


def save_config(cfg: Config, path: str | Path | None = None) -> Path:
    """Write ``cfg`` atomically (temp file, fsync, rename); return the path written.

    A symlinked config is written through to its target. On failure the old file is left
    untouched, the temp file removed, and ConfigError raised.
    """
    p = Path(path) if path is not None else config_path()
    if p.is_symlink():
        p = Path(os.path.realpath(p))
    text = to_toml(cfg)
    try:
        mode = stat.S_IMODE(p.stat().st_mode)
    except OSError:
        mode = 0o644
    try:
        atomic_write_bytes(p, text.encode("utf-8"), mode=mode)
    except OSError as e:
        raise ConfigError(f"{p}: cannot write config file ({e.strerror or e})") from e
    return p
