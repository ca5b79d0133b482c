"""Typed exceptions and the exit codes used by the CLI and the PAM helper.

Library code raises these; only ``faceunlock.cli`` (and the PAM entry point) turn them into
exit codes and messages.
"""

from __future__ import annotations

import enum
from pathlib import Path


class AuthStatus(enum.IntEnum):
    """Process exit codes, one definition used everywhere (CLI, ``auth``, PAM helper).

    0 means success (for ``auth``: the face was recognised). Every non-zero code is a reason
    the face was not accepted; the PAM stack then falls through to the password.
    """

    OK = 0  #: success / face recognised
    ERROR = 1  #: unexpected internal error
    USAGE = 2  #: bad command line
    NO_FACE = 3  #: an input image has no face
    BAD_INPUT = 4  #: unreadable image, bad config value, bad file
    MODEL_ERROR = 5  #: a model file is missing or corrupt
    NO_MATCH = 10  #: faces were seen, none matched before the timeout
    NO_TEMPLATE = 11  #: the user has not enrolled
    CAMERA_ERROR = 12  #: camera missing, busy, or giving no usable frames
    TIMEOUT = 13  #: no face at all was seen before the timeout
    DISABLED = 14  #: face unlock is disabled in the config
    REMOTE = 15  #: remote (SSH) session: face auth never applies
    LID_CLOSED = 16  #: laptop lid closed or display off
    ABORTED = 17  #: interrupted (signal, user cancel)
    TOO_DARK = 18  #: every frame was too dark to use
    LOCKED_OUT = 19  #: too many failures in a row; face auth paused, password still works
    TEMPLATE_ERROR = 20  #: template corrupt, tampered, unsafe, or made with another model
    PRESENTATION_ATTACK = 21  #: the matched face looked like a photo or a screen (liveness)
    KEYRING_ERROR = 22  #: the OS keyring holding the template key is missing, locked or failing
    #: the desktop app (``faceunlock`` with no arguments, ``faceunlock-gui``) cannot open a
    #: window: no graphical session (no usable DISPLAY / WAYLAND_DISPLAY), or Qt's platform
    #: plugin misses a system library; the command-line verbs still work
    NO_DISPLAY = 23
    UNLOCK_FAILED = 24  #: the watcher recognised the face, but the lock screen stayed locked
    #: ``watch`` cannot run or stopped: no D-Bus bus, no lock-screen service on it (GNOME
    #: Shell, MATE, freedesktop ScreenSaver, logind), or the connection to it was lost
    NO_LOCK_SERVICE = 25


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


class TooDarkError(InputError):
    """Too dark to use: every frame, or most of them, was too dark (enrolment, calibration)."""

    status = AuthStatus.TOO_DARK


class ConfigError(FaceUnlockError):
    """A configuration value is invalid."""

    status = AuthStatus.BAD_INPUT


class CameraError(FaceUnlockError):
    """The camera is missing, busy, or returns unusable frames."""

    status = AuthStatus.CAMERA_ERROR


class CameraNotFoundError(CameraError):
    """The camera device node does not exist (unplugged, wrong index)."""

    def __init__(self, device: str) -> None:
        self.device = device
        super().__init__(
            f"no camera at {device}: the device does not exist — is the webcam plugged in? "
            "List devices with `v4l2-ctl --list-devices`"
        )


class CameraBusyError(CameraError):
    """The camera exists but another program holds it."""

    def __init__(self, device: str, holders: str = "") -> None:
        self.device = device
        self.holders = holders
        who = f" ({holders})" if holders else ""
        super().__init__(
            f"camera {device} is busy: another program is using the camera{who} — "
            "close it and try again"
        )


class CameraPermissionError(CameraError):
    """The user may not open the camera device (usually: not in the ``video`` group)."""

    def __init__(self, device: str, group: str = "video") -> None:
        self.device = device
        self.group = group
        super().__init__(
            f"permission denied opening camera {device}: your user is not in the `{group}` "
            f"group — run `sudo usermod -aG {group} $USER`, then log out and back in"
        )


class NotACameraError(CameraError):
    """The device node exists but is no video capture device (``/dev/null``, a V4L2 metadata
    or output node, a file under /dev)."""

    def __init__(self, device: str, what: str) -> None:
        self.device = device
        self.what = what
        super().__init__(
            f"{device} is not a camera: {what}, not a V4L2 video capture device — list the "
            "cameras with `v4l2-ctl --list-devices`"
        )


class NoUsableFramesError(CameraError):
    """The source delivers only failed reads or blank (black / uniform) frames."""

    def __init__(self, device: str, count: int) -> None:
        self.device = device
        self.count = count
        super().__init__(
            f"camera {device} returns no usable frames ({count} consecutive reads failed or "
            "were blank) — is the lens covered, or is this an IR-only node without its emitter?"
        )


class SourceError(CameraError):
    """A replayed source (video file, image folder, source spec) cannot be used."""

    status = AuthStatus.BAD_INPUT

    def __init__(self, source: str | Path, problem: str) -> None:
        self.source = str(source)
        self.problem = problem
        super().__init__(f"frame source {self.source}: {problem}")


class RootRequiredError(FaceUnlockError):
    """An operation that writes system-wide state was attempted without root privileges."""

    def __init__(self, action: str) -> None:
        self.action = action
        super().__init__(f"{action} must run as root (use pkexec or sudo)")


class TemplateError(FaceUnlockError):
    """Base class of every problem with a stored face template or its encryption key."""

    status = AuthStatus.TEMPLATE_ERROR


class TemplateNotFoundError(TemplateError):
    """The user has no stored face template."""

    status = AuthStatus.NO_TEMPLATE

    def __init__(self, user: str, path: str | Path) -> None:
        self.user = user
        self.path = Path(path)
        super().__init__(f"no face template for user {user!r} ({self.path}); enrol first")


class TemplateCorruptError(TemplateError):
    """A template file is unreadable: bad magic, unsupported version, truncated, or it failed
    authentication (tampered with, or encrypted with another key / for another user)."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"template file {self.path}: {problem}")


class TemplateModelMismatchError(TemplateError):
    """The template was enrolled with a different encoder model than the one now in use.

    ``made_with``: the ``model.precision`` (``"fp32"``, ``"int8"``) of the installed encoder
    that made it, when one did (then switching back is an alternative to re-enrolling)."""

    def __init__(
        self,
        path: str | Path,
        template_sha256: str,
        model_sha256: str,
        made_with: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.template_sha256 = template_sha256
        self.model_sha256 = model_sha256
        self.made_with = made_with
        fix = "re-enrol with `faceunlock enroll --replace`"
        if made_with:
            origin = f"the {made_with} face model"
            fix += (
                f", or go back to that model with "
                f"`faceunlock config set model.precision {made_with}`"
            )
        else:
            origin = "another face model, not one of those installed"
        super().__init__(
            f"template {self.path} was made with {origin} (encoder {template_sha256[:12]}…; "
            f"the encoder in use is {model_sha256[:12]}…), so it cannot be compared with "
            f"today's faces: {fix}"
        )


class TemplateUnsafeError(TemplateError):
    """A template file or folder that another account could have written or replaced: owned by
    another user, or writable by group or others."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class TemplateWriteError(TemplateError):
    """A template could not be written, locked or deleted (read-only folder, full disk …)."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"template {self.path}: {problem}")


class TemplateKeyError(TemplateError):
    """The template key is missing, malformed, or stored insecurely."""

    def __init__(self, user: str, problem: str) -> None:
        self.user = user
        self.problem = problem
        super().__init__(f"face template key of user {user!r}: {problem}")


class KeyringUnavailableError(TemplateError):
    """No usable OS keyring (Secret Service) to hold the template key; FaceUnlock never falls
    back to storing templates unencrypted."""

    status = AuthStatus.KEYRING_ERROR

    def __init__(self, reason: str) -> None:
        self.reason = reason.rstrip(". ")
        super().__init__(
            f"no usable keyring for the face template key: {self.reason}. FaceUnlock keeps the key "
            "in the Secret Service keyring: install and run one (Debian/Ubuntu: "
            "`apt install gnome-keyring`; KDE: KWallet with Secret Service, or KeePassXC's "
            "Secret Service integration), make sure its login collection exists and is "
            "unlocked (log in graphically, or `gnome-keyring-daemon --unlock`), and that "
            "DBUS_SESSION_BUS_ADDRESS is set. Templates are never stored unencrypted."
        )


class WatcherError(FaceUnlockError):
    """The lock-screen watcher cannot run: no D-Bus bus to connect to, no lock-state service
    (GNOME / freedesktop ScreenSaver, logind) on it, or the connection was lost."""

    status = AuthStatus.NO_LOCK_SERVICE


class InsecurePathError(TemplateError):
    """A root-only folder or file of the system side (the system template folder, its
    ``state`` folder, the files in them) is a symlink, not owned by root, or writable by
    others: it is refused, never used or repaired."""

    status = AuthStatus.TEMPLATE_ERROR

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class EnrolmentError(InputError):
    """An enrolment did not complete (a pose was never seen, too few usable frames): nothing
    was saved. The message says what was missing, in plain words."""


class NotOwnerError(FaceUnlockError):
    """Adding an appearance was refused: the face is not the enrolled owner's (the live check
    failed, or a new anchor does not match the template). Nothing was saved."""

    status = AuthStatus.NO_MATCH


def _plain_watcher_message(text: str) -> str:
    """The lock-screen watcher's errors carry D-Bus details (bus addresses, ``[Errno 2]``)
    that belong in the log; a person gets what it means."""
    if text.startswith("no lock-screen service"):
        return (
            "There is no lock-screen service to watch in this session. Face unlock of the lock "
            "screen needs GNOME Shell, the MATE screensaver, KDE, Xfce or systemd-logind"
        )
    if "logind session" in text:
        return (
            "This login session is not known to systemd-logind, so the lock screen cannot be "
            "watched"
        )
    return "Face unlock lost contact with the lock screen (the details are in the log)"


def plain_message(exc: BaseException) -> str:
    """A message for a person, not a traceback (the tray's and ``faceunlock watch``'s
    "Face unlock stopped" notices, the dialogs' error lines)."""
    if isinstance(exc, CameraError):
        return f"Camera problem: {exc}"
    if isinstance(exc, ModelError):
        return f"The face models are missing or damaged ({exc}). Reinstall FaceUnlock."
    if isinstance(exc, KeyringUnavailableError):
        return f"The keyring that holds your face template's key is not available: {exc}"
    if isinstance(exc, TemplateError):
        return f"Your face template cannot be read ({exc}). Re-enrol to fix this."
    if isinstance(exc, EnrolmentError):
        return str(exc)
    if isinstance(exc, ConfigError | InputError):
        return f"Invalid setting: {exc}"
    if isinstance(exc, WatcherError):
        return _plain_watcher_message(str(exc))
    if isinstance(exc, FaceUnlockError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"System error: {exc.strerror or exc}"
    return f"Unexpected error: {exc}"
