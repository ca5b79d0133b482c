"""The lock-screen watcher at liveness.level = active: it cannot show the head-turn prompt
on a locked screen, so it does not try (DISABLED, no camera, no count) and the desktop
notification says why; below active it still tries."""

from __future__ import annotations

from pathlib import Path

from faceunlock.app import service
from faceunlock.config import Config, config_set
from faceunlock.engine.templates import TemplateStore
from faceunlock.errors import AuthStatus
from faceunlock.unlock.notify import notice_for
from faceunlock.unlock.watcher import FINAL, AuthAttempt


def _cfg(level: str) -> Config:
    return config_set(config_set(Config(), "liveness.level", level), "camera.source",
                      "/dev/video99")


def test_the_watcher_does_not_try_at_active(store: TemplateStore, tmp_path: Path) -> None:
    attempt = AuthAttempt(store, "alice", _cfg("active"), state_dir=tmp_path)
    status = attempt(lambda: False)
    assert status == AuthStatus.DISABLED and status in FINAL  # no more tries this lock
    assert attempt.message == service.NO_PROMPT_MESSAGE
    assert attempt.result is not None and not attempt.result.frames
    assert not (tmp_path / "failures-alice.json").exists()  # nothing counted
    notice = notice_for(status, attempt.message)
    assert notice is not None and notice.kind == "active-no-prompt"
    assert "head turn or a blink" in notice.body and "Type your password" in notice.body


def test_below_active_the_watcher_still_tries(store: TemplateStore, tmp_path: Path) -> None:
    # no template for alice: the attempt got as far as looking for it
    attempt = AuthAttempt(store, "alice", _cfg("passive"), state_dir=tmp_path)
    assert attempt(lambda: False) == AuthStatus.NO_TEMPLATE
    assert notice_for(AuthStatus.DISABLED, "Face unlock is disabled") is None
