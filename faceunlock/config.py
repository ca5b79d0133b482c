"""FaceUnlock configuration: frozen dataclasses, TOML in and out, validation with precise messages.

The file (``faceunlock.paths.config_path()``) looks like::

    schema_version = 1

    [camera]
    source = "0"        # device index, /dev/videoN, a video file or an image folder
    ...

Every key is declared once, with :func:`key` in its section's dataclass: its default (whose
type is the key's type), its help line and the values it accepts. Validation, ``config get``
and ``set``, ``config --help``, the "unknown key" errors and the TOML writer all read that
declaration, and so do the engine's parameter classes for their defaults. Sections validate
themselves on construction, so an invalid :class:`Config` cannot exist; every problem raises
:class:`~faceunlock.errors.ConfigError` with a message naming the key and the allowed values.

The same machinery (:func:`key`, :class:`Section`, :class:`Schema`) declares and reads the
training configuration of :mod:`faceunlock.training.trainer`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

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
T = TypeVar("T", bool, int, float, str)

_KINDS: dict[type, str] = {bool: "bool", int: "integer", float: "number", str: "text"}


# --------------------------------------------------------------------------------------------
# Declaring keys
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """The declaration of one key: its type (that of its default), default, meaning and the
    values it accepts. ``lo_key``/``hi_key`` name a key of the same section as a bound (within
    ``lo``..``hi``); a bound left None is open."""

    kind: type
    default: Value
    help: str
    lo: float | None = None
    hi: float | None = None
    choices: tuple[Value, ...] = ()
    lo_key: str | None = None
    hi_key: str | None = None
    nonempty: bool = False


def key(
    default: T,
    help: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    choices: tuple[Value, ...] = (),
    lo_key: str | None = None,
    hi_key: str | None = None,
    nonempty: bool = False,
) -> T:
    """A section field: ``timeout: float = key(3.0, "seconds ...", lo=0.5, hi=30.0)``.

    The class attribute keeps the default (``AuthConfig.timeout == 3.0``), so code outside
    the config reads its defaults from here instead of repeating them."""
    spec = Key(type(default), default, help, lo, hi, choices, lo_key, hi_key, nonempty)
    return field(default=default, metadata={"key": spec})


class Section:
    """Mixin of a section dataclass whose fields are all :func:`key` s: it validates (and
    normalises, int to float) itself on construction. ``SECTION`` is its table's name."""

    SECTION: ClassVar[str] = ""

    def __post_init__(self) -> None:
        values = {name: getattr(self, name) for name in keys_of(type(self))}
        clean = _validate_section(type(self), values)
        for name, v in clean.items():
            if v is not values[name]:
                object.__setattr__(self, name, v)


_KEYS_OF: dict[type, dict[str, Key]] = {}


def keys_of(cls: type[Section]) -> dict[str, Key]:
    """``{field name: Key}`` of a section class, in declaration order."""
    if cls in _KEYS_OF:
        return _KEYS_OF[cls]
    out: dict[str, Key] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        spec = f.metadata.get("key")
        if not isinstance(spec, Key):
            raise TypeError(f"{cls.__name__}.{f.name}: declare it with faceunlock.config.key()")
        if f.type not in (spec.kind.__name__, spec.kind):
            raise TypeError(f"{cls.__name__}.{f.name}: annotated {f.type}, but its default "
                            f"{spec.default!r} is a {spec.kind.__name__}")
        out[f.name] = spec
    _KEYS_OF[cls] = out
    return out


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _fmt(v: float) -> str:
    return f"{v:g}"


def _check_type(key: str, spec: Key, value: object) -> Value:
    """Return ``value`` normalised to the key's type, or raise ConfigError."""
    if spec.kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: must be true or false, got {value!r}")
    if spec.kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: must be an integer, got {value!r}")
    if spec.kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{key}: must be a finite number, got {value!r}")
            return float(value)
        raise ConfigError(f"{key}: must be a number, got {value!r}")
    if isinstance(value, str):
        return value
    raise ConfigError(f"{key}: must be a string, got {value!r}")


def _range_message(key: str, spec: Key, value: Value, lo: str | None, hi: str | None) -> str:
    what = "an integer" if spec.kind is int else "a number"
    if lo is not None and hi is not None:
        return f"{key}: must be {what} between {lo} and {hi}, got {value!r}"
    bound = f">= {lo}" if lo is not None else f"<= {hi}"
    return f"{key}: must be {what} {bound}, got {value!r}"


def _check_bounds(
    key: str, spec: Key, value: Value, lo: float | None, hi: float | None,
    lo_text: str | None, hi_text: str | None,
) -> None:
    assert isinstance(value, int | float)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(_range_message(key, spec, value, lo_text, hi_text))


def _choices(spec: Key) -> str:
    return ", ".join('""' if c == "" else str(c) for c in spec.choices)


def _check_static(key: str, spec: Key, value: Value) -> None:
    if spec.nonempty and isinstance(value, str) and not value.strip():
        raise ConfigError(f"{key}: must not be empty")
    if spec.choices and value not in spec.choices:
        allowed = _choices(spec)
        if isinstance(value, str):
            raise ConfigError(f"{key}: {value!r} is not one of {allowed}")
        raise ConfigError(f"{key}: must be one of {allowed}, got {value!r}")
    if spec.lo is not None or spec.hi is not None:
        lo_text = None if spec.lo is None else _fmt(spec.lo)
        hi_text = None if spec.hi is None else _fmt(spec.hi)
        _check_bounds(key, spec, value, spec.lo, spec.hi, lo_text, hi_text)


def _check_linked(key: str, spec: Key, value: Value, values: Mapping[str, Value]) -> None:
    """The bounds set by other keys of the section (``k <= n``)."""
    if spec.lo_key is None and spec.hi_key is None:
        return
    lo, hi = spec.lo, spec.hi
    lo_text = None if lo is None else _fmt(lo)
    hi_text = None if hi is None else _fmt(hi)
    if spec.lo_key is not None:
        other = values[spec.lo_key]
        assert isinstance(other, int | float)
        lo, lo_text = other, f"{spec.lo_key} ({other})"
    if spec.hi_key is not None:
        other = values[spec.hi_key]
        assert isinstance(other, int | float)
        hi, hi_text = other, f"{spec.hi_key} ({other})"
    _check_bounds(key, spec, value, lo, hi, lo_text, hi_text)


def _validate_section(
    cls: type[Section], values: Mapping[str, object], first: str | None = None
) -> dict[str, Value]:
    """Type-check and range-check one section's values; return them normalised.

    ``first`` (a key of this section) is checked first, so a cross-key conflict blames it.
    """
    specs = keys_of(cls)
    order = list(values)
    if first is not None and first in values:
        order.remove(first)
        order.insert(0, first)
    out: dict[str, Value] = {}
    for name in order:
        key = f"{cls.SECTION}.{name}"
        out[name] = _check_type(key, specs[name], values[name])
        _check_static(key, specs[name], out[name])
    for name in order:
        _check_linked(f"{cls.SECTION}.{name}", specs[name], out[name], out)
    return {name: out[name] for name in values}


def _allowed(spec: Key) -> str:
    """The values a key accepts, in words (``config --help``)."""
    if spec.choices:
        return _choices(spec)
    if spec.kind is bool:
        return "true, false"
    if spec.kind is str:
        return "any text" + (", not empty" if spec.nonempty else "")
    lo = None if spec.lo is None else _fmt(spec.lo)
    hi = None if spec.hi is None else _fmt(spec.hi)
    if spec.lo_key:
        lo = f"{spec.lo_key} (>= {lo})" if lo is not None else spec.lo_key
    if spec.hi_key:
        hi = f"{spec.hi_key} (<= {hi})" if hi is not None else spec.hi_key
    if lo is not None and hi is not None:
        return f"{lo} to {hi}"
    if lo is not None or hi is not None:
        return f">= {lo}" if lo is not None else f"<= {hi}"
    return "any " + _KINDS[spec.kind]


# --------------------------------------------------------------------------------------------
# A schema: the sections of a root dataclass
# --------------------------------------------------------------------------------------------


class Schema:
    """The sections of ``root``: its fields whose ``default_factory`` is a :class:`Section`
    (the field named as the section's ``SECTION``), and their keys, ``"section.name"``.
    ``extra`` names top-level keys that are not in a section (``schema_version``)."""

    def __init__(self, root: type, extra: tuple[str, ...] = ()) -> None:
        self.sections: dict[str, type[Section]] = {}
        for f in dataclasses.fields(root):
            factory = f.default_factory
            if isinstance(factory, type) and issubclass(factory, Section):
                if f.name != factory.SECTION:
                    raise TypeError(f"{root.__name__}.{f.name}: {factory.__name__}.SECTION "
                                    f"is {factory.SECTION!r}")
                self.sections[f.name] = factory
        self.keys: dict[str, Key] = {
            f"{s}.{n}": spec for s, cls in self.sections.items() for n, spec in keys_of(cls).items()
        }
        self.extra = extra

    def unknown(self, name: str, what: str = "key") -> str:
        """The message for an unknown key (or section): the nearest name, else them all."""
        import difflib

        candidates = list(self.sections) if what == "section" else [*self.extra, *self.keys]
        close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
        if not close:
            leaf = [c for c in candidates if c.rsplit(".", 1)[-1] == name.rsplit(".", 1)[-1]]
            close = leaf[:1]
        if close:
            return f"unknown {what} {name!r} (did you mean {close[0]!r}?)"
        names = list(self.sections) if what == "section" else list(self.keys)
        return f"unknown {what} {name!r}; the {what}s are {', '.join(names)}"

    def resolve(self, key: str) -> tuple[str, str]:
        """``"auth.timeout"`` -> ``("auth", "timeout")``, an extra key -> ``("", key)``;
        ConfigError for a section or an unknown key."""
        key = key.strip()
        if key in self.extra:
            return "", key
        if key in self.sections:
            keys = ", ".join(k for k in self.keys if k.startswith(key + "."))
            raise ConfigError(f"{key!r} is a section, not a key; its keys are {keys}")
        if key not in self.keys:
            raise ConfigError(self.unknown(key))
        section, name = key.split(".", 1)
        return section, name

    def section_table(self, sname: str, table: object) -> tuple[type[Section], Mapping[str, Any]]:
        """The class of section ``sname`` and its table; ConfigError when ``sname`` is no
        section or ``table`` not a table."""
        if sname not in self.sections:
            if isinstance(table, Mapping):
                raise ConfigError(self.unknown(sname, "section"))
            raise ConfigError(self.unknown(sname))
        if not isinstance(table, Mapping):
            raise ConfigError(f"{sname}: must be a table ([{sname}]), got {table!r}")
        return self.sections[sname], table

    def sections_from_dict(self, data: Mapping[str, Any]) -> dict[str, Section]:
        """The sections of parsed TOML (the ``extra`` keys skipped); missing keys take their
        defaults; ConfigError for unknown sections or keys and for bad values."""
        out: dict[str, Section] = {}
        for sname, table in data.items():
            if sname in self.extra:
                continue
            cls, table = self.section_table(sname, table)
            specs = keys_of(cls)
            for k in table:
                if k not in specs:
                    raise ConfigError(self.unknown(f"{sname}.{k}"))
            out[sname] = cls(**{n: table.get(n, spec.default) for n, spec in specs.items()})
        return out

    def describe(self) -> list[dict[str, str]]:
        """Every key with its type, default, allowed values and meaning, in file order."""
        return [{"key": k, "type": _KINDS[spec.kind],
                 "default": json.dumps(spec.default, ensure_ascii=False),
                 "allowed": _allowed(spec), "help": spec.help}
                for k, spec in self.keys.items()]


# --------------------------------------------------------------------------------------------
# The schema
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CameraConfig(Section):
    """[camera] where frames come from and in which mode."""

    SECTION = "camera"
    source: str = key("0", "camera index, /dev/videoN, a video file or an image folder",
                      nonempty=True)
    width: int = key(640, "capture width in pixels", lo=32, hi=8192)
    height: int = key(480, "capture height in pixels", lo=32, hi=8192)
    fps: int = key(30, "frames per second asked of the camera", lo=1, hi=240)
    rotation: int = key(0, "clockwise degrees the image is turned (a sideways camera)",
                        choices=ROTATIONS)


@dataclass(frozen=True)
class DetectorConfig(Section):
    """[detector] face size limits in pixels (face box height)."""

    SECTION = "detector"
    min_face: int = key(100, "smallest face looked for, in pixels (face box height)",
                        lo=20, hi=4096, hi_key="max_face")
    max_face: int = key(400, "largest face looked for, in pixels",
                        lo=20, hi=4096, lo_key="min_face")


@dataclass(frozen=True)
class ModelConfig(Section):
    """[model] which encoder runs: ``auto`` (the int8 one when installed), ``int8`` or ``fp32``
    (dlib's exact descriptors). Templates are tied to the encoder: re-enrol after a change."""

    SECTION = "model"
    precision: str = key("auto", "face encoder: auto (int8 when installed), int8 or fp32; "
                         "re-enrol after a change", choices=PRECISIONS)


@dataclass(frozen=True)
class AuthConfig(Section):
    """[auth] the unlock decision: timeout, k-of-n voting, security level, lockout."""

    SECTION = "auth"
    timeout: float = key(3.0, "seconds one unlock attempt looks for your face", lo=0.5, hi=30.0)
    k: int = key(2, "matching frames needed to unlock ...", lo=1, hi=10, hi_key="n")
    n: int = key(3, "... among the last n frames", lo=1, hi=10, lo_key="k")
    security_level: str = key("balanced", "how strict the match is: convenient, balanced or "
                              "secure", choices=SECURITY_LEVELS)
    max_failures: int = key(5, "failed attempts in a row before face unlock pauses",
                            lo=1, hi=100)
    lockout_seconds: int = key(60, "how long it pauses (the password always works)",
                               lo=0, hi=86400)
    dark_level: int = key(40, "grey level below which a pixel counts as dark", lo=0, hi=255)
    dark_fraction: float = key(0.95, "share of dark pixels that makes a frame too dark to use",
                               lo=0.05, hi=1.0)
    snapshots: bool = key(False, "keep a picture of each failed attempt")


@dataclass(frozen=True)
class EnrolConfig(Section):
    """[enrol] enrolment."""

    SECTION = "enrol"
    anchors: int = key(10, "face samples taken at enrolment", lo=3, hi=50)


#: the active challenge's window is timed on the frames' timestamps; on the wall clock it
#: ends this much later at most (a camera that stalls cannot hold the attempt open). Here,
#: not in the engine, because the PAM helper adds it to its hard cap before any heavy import
CHALLENGE_CLOCK_SLACK = 1.0
#: the active challenge's prompt comes a random 0 to this many seconds after the match (a
#: recording cannot know when), see faceunlock.engine.challenge
CHALLENGE_MAX_DELAY = 1.5


@dataclass(frozen=True)
class LivenessConfig(Section):
    """[liveness] presentation-attack checks before a match is accepted: ``off``, ``passive``
    (MiniFASNet and the deny cues on the matched frames; see docs/liveness.md) or
    ``active`` (the passive checks, then a prompted head turn to a random side or a
    blink)."""

    SECTION = "liveness"
    level: str = key("passive", "photo and screen checks: off, passive or active (passive plus a "
                     "prompted head turn or blink)", choices=LIVENESS_LEVELS)
    challenge_seconds: float = key(4.0, "seconds to turn your head after the prompt (active)",
                                   lo=2.0, hi=10.0)
    challenges: str = key("turn,blink", "what the active challenge may ask: turn (left or "
                          "right), blink (twice), or both, drawn at random",
                          choices=("turn,blink", "turn", "blink"))


@dataclass(frozen=True)
class WatcherConfig(Section):
    """[watcher] lock-screen watcher."""

    SECTION = "watcher"
    enabled: bool = key(True, "unlock the lock screen when your face is seen")
    backend: str = key("auto", "lock-screen service: auto, logind, freedesktop, gnome or mate",
                       choices=WATCHER_BACKENDS)


@dataclass(frozen=True)
class GeneralConfig(Section):
    """[general] global switches."""

    SECTION = "general"
    disabled: bool = key(False, "turn face unlock off everywhere")


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


SCHEMA = Schema(Config, extra=("schema_version",))
KEYS: tuple[str, ...] = ("schema_version", *SCHEMA.keys)


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


def value_range(key: str) -> tuple[type, float, float]:
    """``(int or float, lo, hi)``: the static range a numeric key accepts (for command-line
    options that override it, e.g. ``auth --timeout`` and ``auth.timeout``)."""
    spec = SCHEMA.keys.get(key)
    if spec is None or spec.kind not in (int, float) or spec.lo is None or spec.hi is None:
        raise KeyError(f"{key!r} is not a numeric key with a range")
    return spec.kind, spec.lo, spec.hi


def describe_keys() -> list[dict[str, str]]:
    """Every settable key with its type, default, allowed values and meaning, in file order
    (``faceunlock config --help``)."""
    return SCHEMA.describe()


def _settable(key: str) -> tuple[str, str]:
    section, name = SCHEMA.resolve(key)
    if not section:
        raise ConfigError("schema_version: is managed by FaceUnlock and cannot be set")
    return section, name


def config_get(cfg: Config, key: str) -> Value:
    """The value of a dotted key, e.g. ``config_get(cfg, "auth.timeout") -> 3.0``."""
    section, name = SCHEMA.resolve(key)
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
    _settable(key)
    spec = SCHEMA.keys[key.strip()]
    t = text.strip()
    if spec.kind is bool:
        if t.lower() in _TRUE:
            return True
        if t.lower() in _FALSE:
            return False
        raise ConfigError(f"{key}: must be true or false, got {text!r}")
    if spec.kind is int:
        if re.fullmatch(r"[+-]?\d+", t):
            return int(t)
        raise ConfigError(f"{key}: must be an integer, got {text!r}")
    if spec.kind is float:
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
    section, name = _settable(key)
    parsed = parse_value(key, value) if isinstance(value, str) else value
    current = getattr(cfg, section)
    cls = SCHEMA.sections[section]
    values = {n: getattr(current, n) for n in keys_of(cls)}
    values[name] = parsed
    clean = _validate_section(cls, values, first=name)
    new_section: Any = cls(**clean)
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
    return Config(schema_version=version, **SCHEMA.sections_from_dict(data))  # type: ignore[arg-type]


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
    cls: type[Section], table: Mapping[str, Any], problems: dict[str, str]
) -> Section:
    specs = keys_of(cls)
    defaults = {n: spec.default for n, spec in specs.items()}
    values = {n: table.get(n, defaults[n]) for n in specs}
    for _ in range(2 * len(specs) + 1):
        try:
            return cls(**values)
        except ConfigError as e:
            key = str(e).split(":", 1)[0]
            name = key.split(".", 1)[-1]
            if name not in values:
                break
            if values[name] == defaults[name]:
                # its default conflicts with another key (k against n): both take theirs
                linked = [n for n, spec in specs.items() if spec.lo_key or spec.hi_key]
                values.update({n: defaults[n] for n in linked})
            problems.setdefault(key, str(e))
            values[name] = defaults[name]
    return cls()


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
    sections: dict[str, Section] = {}
    for sname, table in data.items():
        if sname == "schema_version":
            continue
        try:
            cls, table = SCHEMA.section_table(sname, table)
        except ConfigError as e:
            problems[sname] = str(e)
            continue
        specs = keys_of(cls)
        for k in table:
            if k not in specs:
                problems[f"{sname}.{k}"] = SCHEMA.unknown(f"{sname}.{k}")
        sections[sname] = _lenient_section(cls, table, problems)
    return ConfigFile(p, Config(schema_version=version, **sections), problems, data)  # type: ignore[arg-type]


_HEADER = re.compile(r"\s*\[\s*([A-Za-z0-9_-]+)\s*\]\s*(#.*)?")


def _set_in_text(text: str, section: str, name: str, value: Value) -> str:
    """``text`` with ``name = value`` in its ``[section]`` (the line replaced, or added)."""
    import tomli_w

    lines = text.splitlines(keepends=True)
    new = tomli_w.dumps({name: value})
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
    section, name = _settable(key)
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
    _settable(key)
    return set_in_file(key, SCHEMA.keys[key.strip()].default, path)


# --------------------------------------------------------------------------------------------
# TOML out
# --------------------------------------------------------------------------------------------


def to_dict(cfg: Config) -> dict[str, Any]:
    """``{"schema_version": 1, "camera": {...}, ...}``: every key, in file order."""
    out: dict[str, Any] = {"schema_version": cfg.schema_version}
    for sname, cls in SCHEMA.sections.items():
        section = getattr(cfg, sname)
        out[sname] = {n: getattr(section, n) for n in keys_of(cls)}
    return out


def to_toml(cfg: Config) -> str:
    """The config as TOML text (every key written, defaults included)."""
    import tomli_w  # only here and in set_in_file: reading the config never imports it

    return ("# FaceUnlock configuration. Edit it, or use `faceunlock config set KEY VALUE`.\n"
            + tomli_w.dumps(to_dict(cfg)))


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
