"""The enrolment wizard (one page per module) over a Qt-free
:class:`~faceunlock.app.enrolment_draft.EnrolmentDraft`, which holds the captures and does the
Finish save. See :mod:`faceunlock.ui.wizard.wizard`."""

from __future__ import annotations

from faceunlock.ui.wizard.calibrate import CalibratePage
from faceunlock.ui.wizard.camera import OTHER_FOLDER, OTHER_SOURCE, CameraPage
from faceunlock.ui.wizard.capture import CapturePage
from faceunlock.ui.wizard.common import (
    PAGE_CALIBRATE,
    PAGE_CAMERA,
    PAGE_CAPTURE,
    PAGE_ENABLE,
    PAGE_FINISH,
    PAGE_WELCOME,
)
from faceunlock.ui.wizard.enable import PKEXEC_ENV, EnablePage, default_elevate, enable_outcome
from faceunlock.ui.wizard.finish import FinishPage
from faceunlock.ui.wizard.welcome import WelcomePage
from faceunlock.ui.wizard.wizard import EnrolWizard

__all__ = [
    "OTHER_FOLDER",
    "OTHER_SOURCE",
    "PAGE_CALIBRATE",
    "PAGE_CAMERA",
    "PAGE_CAPTURE",
    "PAGE_ENABLE",
    "PAGE_FINISH",
    "PAGE_WELCOME",
    "PKEXEC_ENV",
    "CalibratePage",
    "CameraPage",
    "CapturePage",
    "EnablePage",
    "EnrolWizard",
    "FinishPage",
    "WelcomePage",
    "default_elevate",
    "enable_outcome",
]
