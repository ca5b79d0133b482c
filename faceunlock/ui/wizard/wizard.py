"""The enrolment wizard: welcome, camera, capture, calibrate, enable, finish.

Nothing is written until Finish: the anchors and the chosen threshold live in memory, in an
:class:`~faceunlock.app.enrolment_draft.EnrolmentDraft`, which saves the template once,
atomically, under the store's lock (:meth:`TemplateStore.update`); the lock-screen
watcher switch of the Enable page and the camera chosen on the Camera page are written to
the config file then too (one atomic write), and only if they changed. The camera the wizard
started with (``cfg.camera.source``, which may be a ``--camera`` override of this run) is
never written by itself. Cancel (or closing the window) at any point saves nothing; once
anchors were captured it first asks whether to discard them. The one exception is the Enable page's
opt-in login-screen/sudo step: it changes system files when (and only when) its button is
pressed, through ``pkexec faceunlock system enable``, because it needs administrator rights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QAbstractButton, QMessageBox, QWidget, QWizard, QWizardPage

from faceunlock.app import service
from faceunlock.app.enrolment_draft import EnrolmentDraft
from faceunlock.config import Config, load_config
from faceunlock.engine import calibration as cal
from faceunlock.engine.cohort import Matcher
from faceunlock.engine.enrolment import Capture, EnrolParams
from faceunlock.engine.pipeline import FacePipeline
from faceunlock.engine.sources import FrameSource, make_source
from faceunlock.engine.templates import Anchor, Template, TemplateStore
from faceunlock.errors import FaceUnlockError
from faceunlock.ui.wizard.calibrate import CalibratePage
from faceunlock.ui.wizard.camera import CameraPage
from faceunlock.ui.wizard.capture import CapturePage
from faceunlock.ui.wizard.common import (
    PAGE_CALIBRATE,
    PAGE_CAMERA,
    PAGE_CAPTURE,
    PAGE_ENABLE,
    PAGE_FINISH,
    PAGE_WELCOME,
)
from faceunlock.ui.wizard.enable import EnablePage, default_elevate
from faceunlock.ui.wizard.finish import FinishPage
from faceunlock.ui.wizard.welcome import WelcomePage


class EnrolWizard(QWizard):
    """Enrol (or add an appearance for) ``user``.

    store/cfg: injectable for tests; source_spec: the source to preselect (a camera index,
    a video file or an image folder); anchors: how many to capture (default
    ``cfg.enrol.anchors``); label: the appearance name; replace: start a new template
    instead of adding to an existing one; pipe_factory: returns the Pipeline;
    min_interval: at most one frame per this many seconds (preview pacing); config_path:
    where the watcher switch and the chosen camera are written at Finish (default: the
    user's config file); elevate: the privilege-escalation prefix of the login-screen step
    (default :func:`default_elevate`);
    system_root: ``--root`` of that step (tests; "/" is the real system);
    realtime: play a video file or image folder at its own frame rate, as a camera (False:
    as fast as it decodes, for tests where pacing is not the point; the capture's timing
    follows the frames' timestamps either way); enrol_overrides: EnrolParams fields to
    change (tests: a shorter ``pose_timeout``).

    Adding an appearance (an existing template, not ``replace``) first verifies the owner
    live through the normal authentication path, and every new anchor must match the
    template at its threshold, or the whole appearance is refused.
    """

    def __init__(
        self,
        store: TemplateStore,
        cfg: Config,
        *,
        user: str | None = None,
        source_spec: str | None = None,
        anchors: int | None = None,
        label: str = "default",
        replace: bool = False,
        pipe_factory: Callable[[], FacePipeline] | None = None,
        min_interval: float = 0.0,
        config_path: str | Path | None = None,
        elevate: Sequence[str] | None = None,
        system_root: str = "/",
        realtime: bool = True,
        enrol_overrides: dict[str, Any] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.realtime = realtime
        self.enrol_overrides = dict(enrol_overrides or {})
        self.capture_summary = ""
        self.store = store
        self.start_camera = cfg.camera.source  # never written unless another is chosen
        self.config_path = config_path
        self.elevate = list(elevate) if elevate is not None else default_elevate()
        self.system_root = system_root
        self.user = user or service.current_user()
        self.draft = EnrolmentDraft(
            store, self.user, cfg, label=label, replace=replace, config_path=config_path
        )
        self.initial_spec = source_spec
        self.source_spec: str | None = source_spec
        self.anchors = anchors if anchors is not None else cfg.enrol.anchors
        self.replace = replace
        self.pipe_factory: Callable[[], FacePipeline] = pipe_factory or (
            lambda: service.pipeline_for(cfg)
        )
        self.min_interval = min_interval
        #: the open "discard the captured anchors?" question of Cancel (None: none open)
        self.discard_box: QMessageBox | None = None
        self.setWindowTitle(
            "FaceUnlock: replace your face" if replace and store.exists(self.user)
            else "FaceUnlock: enrol your face"
        )
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        self.pages: dict[int, QWizardPage] = {
            PAGE_WELCOME: WelcomePage(self),
            PAGE_CAMERA: CameraPage(self),
            PAGE_CAPTURE: CapturePage(self),
            PAGE_CALIBRATE: CalibratePage(self),
            PAGE_ENABLE: EnablePage(self),
            PAGE_FINISH: FinishPage(self),
        }
        for pid, page in self.pages.items():
            self.setPage(pid, page)
        self.setStartId(PAGE_WELCOME)
        # the preview runs whenever the camera page is shown, forwards or back
        self.currentIdChanged.connect(self._page_changed)
        self.resize(720, 600)

    # what the draft holds, under the names the pages and the tests use
    @property
    def cfg(self) -> Config:
        return self.draft.cfg

    @property
    def label(self) -> str:
        return self.draft.label

    @label.setter
    def label(self, value: str) -> None:
        self.draft.label = value

    @property
    def captures(self) -> list[Capture]:
        return self.draft.captures

    @captures.setter
    def captures(self, value: list[Capture]) -> None:
        self.draft.set_captures(value)

    @property
    def template(self) -> Template | None:
        return self.draft.template

    @property
    def new_anchors(self) -> list[Anchor]:
        return self.draft.new_anchors

    @property
    def choice(self) -> cal.ThresholdChoice | None:
        return self.draft.choice

    @choice.setter
    def choice(self, value: cal.ThresholdChoice | None) -> None:
        self.draft.choose(value)

    @property
    def saved_path(self) -> Path | None:
        return self.draft.saved_path

    def source_factory(self, spec: str, *, preview: bool, loop: bool = True
                       ) -> Callable[[], FrameSource]:
        """The source ``spec`` as a camera: a video file or image folder loops (a camera does
        not end) and plays in real time unless ``realtime`` is off."""
        c = self.cfg.camera
        live = dict(service.LIVE) if self.realtime else {}

        def build() -> FrameSource:
            return make_source(
                spec, width=c.width, height=c.height, fps=c.fps, rotation=c.rotation,
                loop=preview or loop, **live,
            )

        return build

    def enrol_params(self) -> EnrolParams:
        return service.enrol_params(self.cfg, self.anchors, **self.enrol_overrides)

    def adding(self) -> bool:
        """True when the capture adds an appearance to the owner's existing template."""
        return self.draft.adding()

    def owner_check(
        self, spec: str, on_prompt: Callable[[str], None] | None = None
    ) -> Callable[[FacePipeline], tuple[Matcher, float]]:
        """For the capture worker: verify the owner live, then the template's Matcher and
        threshold (every new anchor must match them). ``on_prompt``: shows the active
        challenge's words (``liveness.level = active``)."""
        build = self.source_factory(spec, preview=False, loop=False)

        def check(pipe: FacePipeline) -> tuple[Matcher, float]:
            service.verify_owner(self.store, self.user, self.cfg, build(), pipe,
                                 on_prompt=on_prompt)
            t = self.store.load(self.user, expected_model_sha256=pipe.encoder.sha256)
            return service.matcher(t, pipe), service.owner_threshold(t, pipe)

        return check

    def _page_changed(self, pid: int) -> None:
        if pid == PAGE_CAMERA:
            self.camera_page._restart()

    @property
    def camera_page(self) -> CameraPage:
        page = self.pages[PAGE_CAMERA]
        assert isinstance(page, CameraPage)
        return page

    def build_template(self) -> None:
        """The template to save: the existing one plus the new anchors (unless replace)."""
        self.draft.build_template(self.pipe_factory())

    def save(self) -> Path:
        """Finish: the draft saves the template, then the config choices that changed."""
        if not self.draft.complete():
            raise RuntimeError("nothing to save: the wizard is not complete")
        return self.draft.save(self.config_changes())

    @property
    def enable_page(self) -> EnablePage:
        page = self.pages[PAGE_ENABLE]
        assert isinstance(page, EnablePage)
        return page

    def camera_to_save(self) -> str | None:
        """The Camera page's choice when it is to be written at Finish: it differs from the
        camera the wizard started with (so an untouched ``--camera`` override of this run is
        never saved) and from ``camera.source`` in the config file. Else None."""
        from faceunlock.ui.camera_choice import same_source

        spec = self.source_spec
        if spec is None or same_source(spec, self.start_camera):
            return None
        try:
            on_disk = load_config(self.config_path).camera.source
        except FaceUnlockError:
            on_disk = None  # an unreadable file: save_config_choices reports it
        return None if same_source(spec, on_disk) else spec

    def config_changes(self) -> dict[str, str]:
        """The Enable page's watcher switch and the Camera page's camera, where they differ
        from the config the wizard started with: written at Finish, in one atomic write of the
        re-read file (so only those keys change)."""
        changes: dict[str, str] = {}
        want = self.enable_page.watcher.isChecked()
        if want != self.cfg.watcher.enabled:
            changes["watcher.enabled"] = "true" if want else "false"
        camera = self.camera_to_save()
        if camera is not None:
            changes["camera.source"] = camera
        return changes

    def save_config_choices(self) -> bool:
        """Write :meth:`config_changes` now (True when there were any)."""
        changes = self.config_changes()
        if changes:
            self.draft.write_config(changes)
        return bool(changes)

    def stop_workers(self) -> None:
        for page in self.pages.values():
            stop = getattr(page, "stop", None)
            if stop is not None:
                stop()

    def unsaved_captures(self) -> int:
        """How many anchors were captured and would be lost by Cancel (0 once saved)."""
        if self.saved_path is not None:
            return 0
        page = self.pages[PAGE_CAPTURE]
        taken = len(page.captures) if isinstance(page, CapturePage) else 0
        return max(len(self.captures), taken)

    def reject(self) -> None:
        """Cancel, Esc or closing the window: once anchors were captured, first ask whether
        to discard them (:attr:`discard_box`, answered in :meth:`_discard_answered`)."""
        n = self.unsaved_captures()
        if not n:
            super().reject()
            return
        if self.discard_box is not None:
            self.discard_box.raise_()
            return
        box = QMessageBox(self)
        box.setObjectName("discard_box")
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Discard your face pictures?")
        box.setText(f"{n} pictures of your face were taken. Discard them and close the setup?")
        box.setInformativeText("Nothing has been saved yet. Keep them to go on where you were.")
        keep = box.addButton("&Keep", QMessageBox.ButtonRole.RejectRole)
        discard = box.addButton("&Discard", QMessageBox.ButtonRole.DestructiveRole)
        assert keep is not None and discard is not None
        keep.setObjectName("keep")
        discard.setObjectName("discard")
        box.setDefaultButton(keep)
        box.setEscapeButton(keep)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.buttonClicked.connect(self._discard_answered)
        self.discard_box = box
        box.open()

    def _discard_answered(self, button: QAbstractButton) -> None:
        box, self.discard_box = self.discard_box, None
        if box is None:
            return
        box.deleteLater()
        if button.objectName() == "discard":
            self.draft.discard()
            page = self.pages[PAGE_CAPTURE]
            if isinstance(page, CapturePage):
                page.captures = []
            super().reject()

    def done(self, result: int) -> None:
        self.stop_workers()
        super().done(result)
