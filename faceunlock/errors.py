"""Typed exceptions and the exit codes used by the CLI and the PAM helper.

Library code raises these; only ``faceunlock.cli`` (and the PAM entry point) turn them into
exit codes and messages.
"""

from __future__ import annotations

import enum
from pathlib import Path


class AuthStatus(enum.IntEnum):
    """Process exit codes, one definition used everywhere."""

    OK = 0
    ERROR = 1
    USAGE = 2
    NO_FACE = 3
    BAD_INPUT = 4
    MODEL_ERROR = 5
    NO_MATCH = 10
    NO_TEMPLATE = 11
    CAMERA_ERROR = 12
    TIMEOUT = 13
    DISABLED = 14
    REMOTE = 15
    LID_CLOSED = 16


class FaceUnlockError(Exception):
    """Base class of every error FaceUnlock raises on purpose."""

    status: AuthStatus = AuthStatus.ERROR


class ModelError(FaceUnlockError):
    """A model file is missing, corrupt, or does not match its sidecar."""

    status = AuthStatus.MODEL_ERROR

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"model file {self.path}: {problem}")


class ImageReadError(FaceUnlockError):
    """An image file cannot be read or decoded."""

    status = AuthStatus.BAD_INPUT

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"image {self.path}: {problem}")


class NoFaceError(FaceUnlockError):
    """No face was found where one was required."""

    status = AuthStatus.NO_FACE

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"no face found in {what}")


class InputError(FaceUnlockError):
    """Input data (an array, a config value) has the wrong shape, type or value."""

    status = AuthStatus.BAD_INPUT


class ConfigError(FaceUnlockError):
    """A configuration value is invalid."""

    status = AuthStatus.BAD_INPUT


class CameraError(FaceUnlockError):
    """The camera is missing, busy, or returns unusable frames."""

    status = AuthStatus.CAMERA_ERROR
