"""The CLI package: every verb module registers a handler with typed options, and the
enrolment verb answers to ``enrol`` (its name) and to ``enroll`` and ``add``."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from faceunlock.cli import build_parser, main
from faceunlock.cli.common import RUN, Runner, options_from
from faceunlock.config import Config
from faceunlock.engine.templates import TemplateStore
from tests.fakes.clip_material import FEMALE


def _verbs(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_enrol_is_the_name_and_enroll_and_add_are_aliases() -> None:
    verbs = _verbs(build_parser())
    assert verbs["enroll"] is verbs["enrol"] and verbs["add"] is verbs["enrol"]
    assert "enrol (enroll, add)" in build_parser().format_help()


def test_every_verb_runs_a_handler_with_frozen_options() -> None:
    """Each verb's parsed namespace turns into its frozen option dataclass (no Namespace
    reaches a handler), for the required arguments given."""
    required = {"verify": ["a.png", "b.png"], "embed": ["--out", "x.npz"],
                "remove": ["ID"], "config": ["get"], "system": ["status"],
                "train": ["--config", "t.toml"], "export": ["ckpt", "--out", "d"]}
    seen = 0
    for verb in _verbs(build_parser()):
        if verb == "eval":
            continue
        ns = build_parser().parse_args([verb, *required.get(verb, [])])
        runner = vars(ns)[RUN]
        assert isinstance(runner, Runner), verb
        opts = options_from(runner.options, ns)
        assert dataclasses.is_dataclass(opts) and not isinstance(opts, argparse.Namespace)
        with pytest.raises(dataclasses.FrozenInstanceError):
            opts.json = True  # type: ignore[misc]
        seen += 1
    assert seen >= 19


@pytest.mark.slow
@pytest.mark.parametrize("verb", ["enrol", "enroll", "add"])
def test_each_name_enrols(
    verb: str,
    tmp_path: Path,
    clips_dir: Path,
    store: TemplateStore,
    monkeypatch: pytest.MonkeyPatch,
    clip_config: Callable[[Mapping[str, str]], Config],
    capsys: pytest.CaptureFixture[str],
) -> None:
    clip_config({"enrol.anchors": "3"})
    monkeypatch.setattr("faceunlock.cli.common._store", lambda: store)
    rc = main([verb, "--user", "bob", "--source", str(clips_dir / FEMALE), "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert '"user": "bob"' in out.splitlines()[-1]
    assert len(store.load("bob").anchors) == 3
