"""The enrolment draft without Qt: a real capture from the woman's clip (real detector,
landmarks and encoder) is held in memory, calibrated and saved only by Finish, atomically."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from faceunlock.app.enrolment_draft import EnrolmentDraft
from faceunlock.config import Config, load_config, save_config
from faceunlock.engine import service
from faceunlock.engine.enrollment import Capture, EnrolmentSession, EnrolParams
from faceunlock.engine.pipeline import Pipeline
from faceunlock.engine.sources import VideoFileSource
from faceunlock.engine.templates import StaticKeyProvider, TemplateStore
from tests.fakes.clip_material import FAST_CAPTURE, FEMALE, clip_config

USER = "alice"


@pytest.fixture(scope="module")
def woman(clips_dir: Path) -> tuple[Pipeline, list[Capture]]:
    """The real pipeline and 3 anchors captured from the woman's clip."""
    pipe = service.pipeline_for(clip_config())
    s = EnrolmentSession(pipe, EnrolParams(anchors=3, min_face=50, guided=False, **FAST_CAPTURE))
    with VideoFileSource(clips_dir / FEMALE) as src:
        for fr in src:
            s.offer(fr)
            if s.done or s.failure:
                break
    assert s.done and len(s.captures) == 3, s.failure
    return pipe, list(s.captures)


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` and its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _setup(tmp_path: Path) -> tuple[TemplateStore, Config, Path]:
    cfg = clip_config()
    config_path = tmp_path / "config.toml"
    save_config(cfg, config_path)
    return TemplateStore(tmp_path / "templates", StaticKeyProvider(bytes(32))), cfg, config_path


def _calibrated(draft: EnrolmentDraft, pipe: Pipeline, captures: list[Capture]) -> None:
    """What the wizard does between the capture and Finish, without Qt."""
    draft.set_captures(captures)
    t = draft.build_template(pipe)
    m, table, genuine = service.calibration_inputs(t, pipe)
    draft.choose(service.choose(m, table, genuine, "secure"))


def test_nothing_is_written_before_finish(
    woman: tuple[Pipeline, list[Capture]], tmp_path: Path
) -> None:
    pipe, captures = woman
    store, cfg, config_path = _setup(tmp_path)
    before = _tree(tmp_path)
    draft = EnrolmentDraft(store, USER, cfg, label="desk", config_path=config_path)
    _calibrated(draft, pipe, captures)
    assert draft.complete() and draft.template is not None and len(draft.template) == 3
    # captured, built, calibrated: not one byte on disk changed
    assert _tree(tmp_path) == before
    assert not store.exists(USER) and draft.saved_path is None

    path = draft.save({"watcher.enabled": "false"})
    assert path == store.path(USER) and path.is_file()
    saved = store.load(USER, expected_model_sha256=pipe.encoder.sha256)
    assert len(saved) == 3 and {a.label for a in saved.anchors} == {"desk"}
    assert draft.choice is not None
    assert saved.threshold == pytest.approx(draft.choice.threshold)
    assert saved.security_level == "secure"
    assert load_config(config_path).watcher.enabled is False
    assert draft.cfg.watcher.enabled is False
    # no temp file left beside the template or the config
    assert sorted(p.name for p in store.directory.iterdir()) == [path.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml", "templates"]


def test_discard_forgets_and_an_incomplete_draft_saves_nothing(
    woman: tuple[Pipeline, list[Capture]], tmp_path: Path
) -> None:
    pipe, captures = woman
    store, cfg, config_path = _setup(tmp_path)
    before = _tree(tmp_path)
    draft = EnrolmentDraft(store, USER, cfg, config_path=config_path)
    _calibrated(draft, pipe, captures)
    draft.discard()
    assert not draft.has_captures() and draft.template is None and draft.choice is None
    with pytest.raises(RuntimeError, match="not complete"):
        draft.save({"watcher.enabled": "false"})
    # captured again but not calibrated: still nothing to save
    draft.set_captures(captures)
    draft.build_template(pipe)
    with pytest.raises(RuntimeError, match="not complete"):
        draft.save()
    assert _tree(tmp_path) == before


def test_finish_is_atomic_a_failed_write_keeps_the_old_template_and_the_config(
    woman: tuple[Pipeline, list[Capture]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rename that publishes the new template fails (a full disk, say): the template on
    disk is the old one byte for byte, no temp file is left, and the config keys the wizard
    changed are not written either (they come after the template)."""
    pipe, captures = woman
    store, cfg, config_path = _setup(tmp_path)
    first = EnrolmentDraft(store, USER, cfg, config_path=config_path)
    _calibrated(first, pipe, captures)
    path = first.save()
    old_template, old_config = path.read_bytes(), config_path.read_bytes()

    real_replace = os.replace

    def failing_replace(src: str | Path, dst: str | Path) -> None:
        if Path(dst) == path:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    second = EnrolmentDraft(store, USER, cfg, replace=True, config_path=config_path)
    _calibrated(second, pipe, captures[:2])
    with pytest.raises(OSError):
        second.save({"watcher.enabled": "false"})
    assert path.read_bytes() == old_template
    assert config_path.read_bytes() == old_config
    leftovers = [p.name for p in store.directory.iterdir()
                 if p != path and p != store.backup_path(USER)]
    assert leftovers == []
    assert len(store.load(USER)) == 3


def test_the_draft_imports_no_qt() -> None:
    code = ("import sys, faceunlock.app.enrolment_draft; "
            "sys.exit(1 if any(m.startswith('PyQt6') for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_adding_an_appearance_keeps_the_old_anchors(
    woman: tuple[Pipeline, list[Capture]], tmp_path: Path
) -> None:
    pipe, captures = woman
    store, cfg, config_path = _setup(tmp_path)
    first = EnrolmentDraft(store, USER, cfg, config_path=config_path)
    _calibrated(first, pipe, captures)
    first.save()
    old = store.path(USER).read_bytes()
    second = EnrolmentDraft(store, USER, cfg, label="glasses", config_path=config_path)
    assert second.adding()
    _calibrated(second, pipe, captures[:2])
    assert store.path(USER).read_bytes() == old  # still nothing written before Finish
    second.save()
    t = store.load(USER)
    assert len(t) == 5
    assert sorted(a.label for a in t.anchors) == ["default"] * 3 + ["glasses"] * 2
