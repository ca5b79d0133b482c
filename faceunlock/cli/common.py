"""What the verb modules share: numeric option types, the engine options, JSON output, and
:func:`bind`, which turns a parsed ``argparse.Namespace`` into a verb's typed options."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from faceunlock.config import Config
    from faceunlock.engine.pipeline import PipelineSettings
    from faceunlock.engine.templates import TemplateStore

#: ``--source`` of the verbs that read the configured camera
SOURCE_HELP = "camera index, /dev/videoN, video file or image folder (default: camera.source)"

#: ``verify --threshold``: a Euclidean distance between two descriptors (0.6 is typical)
THRESHOLD_RANGE = (0.0, 2.0)

#: the name under which :func:`bind` leaves a verb's runner in the namespace
RUN = "_run"


class Subparsers(Protocol):
    """``ArgumentParser.add_subparsers()``'s result, as the verb modules use it."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


def number(
    kind: type, lo: float, hi: float, key: str | None = None
) -> Callable[[str], int | float]:
    """An argparse ``type`` for a numeric option: an integer (``kind`` int) or a finite number
    between ``lo`` and ``hi``; anything else is a usage error (exit 2) naming the range, and
    the config key ``key`` the option overrides."""
    what = "an integer" if kind is int else "a number"
    allowed = f"{what} between {lo:g} and {hi:g}" + (f" (the range of {key})" if key else "")

    def parse(text: str) -> int | float:
        t = text.strip()
        value: int | float | None = None
        if kind is int:
            if re.fullmatch(r"[+-]?\d{1,18}", t):
                value = int(t)
        else:
            try:
                value = float(t)
            except ValueError:
                value = None
        if value is None or not math.isfinite(value) or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse


def config_number(key: str) -> Callable[[str], int | float]:
    """:func:`number` with the range of config key ``key`` (faceunlock.config's rules)."""
    from faceunlock.config import value_range

    return number(*value_range(key), key=key)


def print_json(obj: object) -> None:
    print(json.dumps(obj, sort_keys=True))


def user_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--user", help="user name (default: the current user)")


def json_arg(p: argparse.ArgumentParser, text: str = "print the result as JSON (for scripts)"
             ) -> None:
    p.add_argument("--json", action="store_true", help=text)


@dataclass(frozen=True)
class EngineOptions:
    """The ``engine`` option group of the verbs that run the pipeline directly."""

    model: str | None
    min_face: int
    max_face: int | None
    downscale: float | None
    upsample: int
    no_flip: bool
    zoom: float
    threads: int | None
    coarse_first: bool
    precision: str

    def settings(self) -> PipelineSettings:
        from faceunlock.engine.pipeline import PipelineSettings

        return PipelineSettings(
            min_face=self.min_face,
            max_face=self.max_face,
            downscale=self.downscale,
            upsample=self.upsample,
            flip_average=not self.no_flip,
            zoom=self.zoom,
            threads=self.threads,
            models=self.model,
            precision=self.precision,
            coarse_first=self.coarse_first,
        )


def add_engine_args(p: argparse.ArgumentParser, min_face: int = 80) -> None:
    g = p.add_argument_group("engine")
    g.add_argument("--model", metavar="DIR", help="models directory (default: bundled models/)")
    g.add_argument(
        "--min-face",
        type=config_number("detector.min_face"),
        default=min_face,
        metavar="PX",
        help=f"smallest face to detect, in pixels (default {min_face})",
    )
    g.add_argument(
        "--max-face",
        type=config_number("detector.max_face"),
        default=None,
        metavar="PX",
        help="largest face to detect; fewer pyramid levels (default: any)",
    )
    g.add_argument(
        "--downscale",
        type=number(float, 0.1, 16.0),
        default=None,
        metavar="F",
        help="shrink frames by F before detection (default: from --min-face)",
    )
    g.add_argument(
        "--upsample",
        type=number(int, 0, 3),
        default=0,
        metavar="N",
        help="upsample N times before detection, for faces under 80 px",
    )
    g.add_argument(
        "--no-flip", action="store_true", help="do not average each embedding with its mirror image"
    )
    g.add_argument("--zoom", type=number(float, 0.5, 2.0), default=1.05, metavar="Z",
                   help="magnify each chip by Z before encoding (1 = off; default 1.05)")
    g.add_argument("--threads", type=number(int, 1, 256), default=None,
                   help="onnxruntime threads")
    g.add_argument("--coarse-first", action="store_true",
                   help="look for faces of 160 px and more on the halved frame first (the "
                        "unlock path's setting; smaller faces beside a big one are not seen)")
    g.add_argument("--precision", choices=("auto", "int8", "fp32"), default="auto",
                   help="encoder: int8 (encoder-int8.onnx), fp32 (encoder.onnx, dlib's exact "
                        "descriptors) or auto (int8 when the models directory has it)")


Opts = TypeVar("Opts")


def options_from(cls: type[Opts], ns: argparse.Namespace) -> Opts:
    """``cls`` (a dataclass of a verb's options) filled from the parsed namespace: each field
    from the option of its name, a field named ``engine`` from the engine option group."""
    values = vars(ns)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name == "engine":
            kwargs[f.name] = options_from(EngineOptions, ns)
        else:
            kwargs[f.name] = values[f.name]
    return cls(**kwargs)


@dataclass(frozen=True)
class Runner(Generic[Opts]):
    """A verb's handler and the type of its options: called with the parsed namespace, it
    builds the options (:func:`options_from`) and runs the handler on them."""

    handler: Callable[[Opts], int]
    options: type[Opts]

    def __call__(self, ns: argparse.Namespace) -> int:
        return self.handler(options_from(self.options, ns))


def bind(p: argparse.ArgumentParser, handler: Callable[[Opts], int], options: type[Opts]) -> None:
    """Run ``handler`` with the verb's typed ``options`` when ``p``'s verb is chosen."""
    p.set_defaults(**{RUN: Runner(handler, options)})


# ------------------------------------------------------------------ the user's data
def _cfg() -> Config:
    from faceunlock.config import load_config

    return load_config()


def _store() -> TemplateStore:
    """The user's template store (tests replace this function)."""
    from faceunlock.engine.templates import TemplateStore

    return TemplateStore()


def store() -> TemplateStore:
    return _store()


def config() -> Config:
    return _cfg()


def user_or_current(user: str | None) -> str:
    from faceunlock.app.service import current_user

    return user or current_user()
