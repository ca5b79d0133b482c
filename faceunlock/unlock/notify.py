"""Desktop notifications for the unlock failures a person should hear about.

When face unlock cannot work at the lock screen (the camera is busy or missing, too many
failed tries, the face models or the saved face are broken) the person in front of the
screen only sees that nothing happens. :func:`notice_for` turns the watcher's outcome into a
:class:`Notice` in plain words; :class:`Notifier` shows it through the freedesktop
notification service (``org.freedesktop.Notifications.Notify`` on the session bus, spoken with
jeepney, so that ``faceunlock watch`` can use it without Qt) and lets the same kind of
problem through at most once per ``interval`` seconds, so a camera that stays busy does not
produce one notification per attempt. ``faceunlock watch`` keeps that limit in a small state
file (:class:`FileRateLimiter`), so a watcher that systemd restarts does not repeat itself.

Outcomes that are not worth a notification (not recognised, no face seen, too dark, the lid
closed) return None: the next attempt or the password takes care of them.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from jeepney import DBusAddress, MessageType, new_method_call

from faceunlock.errors import AuthStatus, WatcherError
from faceunlock.paths import assets_dir, user_state_dir
from faceunlock.unlock.lockstate import connect

log = logging.getLogger(__name__)

BUS_NAME = "org.freedesktop.Notifications"
OBJECT_PATH = "/org/freedesktop/Notifications"
INTERFACE = "org.freedesktop.Notifications"
#: seconds during which a second notice of the same kind is not shown
REPEAT_INTERVAL = 300.0
#: seconds to wait for the notification service's reply
CALL_TIMEOUT = 2.0
PASSWORD = "Type your password to unlock."

#: urgency hint values of the notification spec
LOW, NORMAL, CRITICAL = 0, 1, 2


@dataclass(frozen=True)
class Notice:
    """One notification. ``kind``: what went wrong (``"camera-busy"``, ``"locked-out"``, ...),
    the key of the repeat limit; ``summary``: the title; ``body``: one or two sentences for
    someone who is not a programmer."""

    kind: str
    summary: str
    body: str
    urgency: int = NORMAL


def _camera_notice(detail: str) -> Notice:
    """The camera problem named by ``detail`` (the message of a
    :class:`~faceunlock.errors.CameraError` subclass)."""
    text = detail.lower()
    if "busy" in text:
        return Notice(
            "camera-busy",
            "Face unlock: the camera is busy",
            f"The camera is busy — another app is using it. {PASSWORD}",
        )
    if "permission denied" in text:
        return Notice(
            "camera-permission",
            "Face unlock: no permission to use the camera",
            "FaceUnlock is not allowed to use the camera (your account is not in the "
            f"“video” group). {PASSWORD}",
        )
    if "no camera at" in text or "does not exist" in text:
        return Notice(
            "camera-missing",
            "Face unlock: no camera found",
            f"No camera was found — is it plugged in? {PASSWORD}",
        )
    if "no usable frames" in text:
        return Notice(
            "camera-blank",
            "Face unlock: the camera shows nothing",
            f"The camera's picture is black — is the lens covered? {PASSWORD}",
        )
    return Notice(
        "camera-error",
        "Face unlock: camera problem",
        f"The camera could not be used. {PASSWORD}",
    )


def notice_for(status: AuthStatus | None, detail: str = "") -> Notice | None:
    """The notice for an attempt's outcome, or None when it needs none.

    status: the :class:`AuthStatus` of the attempt (``WatcherEvent.status``); detail: its
    message (``WatcherEvent.detail``), used to tell the camera problems apart."""
    if status == AuthStatus.UNLOCK_FAILED:
        return Notice(
            "unlock-failed",
            "Face unlock could not unlock the screen",
            f"Your face was recognised, but the lock screen did not open. {PASSWORD} "
            "FaceUnlock keeps trying.",
        )
    if status == AuthStatus.CAMERA_ERROR:
        return _camera_notice(detail)
    if status == AuthStatus.DISABLED and "liveness.level = active" in detail:
        # the watcher cannot show the challenge's prompt on a locked screen, so it does not try
        return Notice(
            "active-no-prompt",
            "Face unlock waits for the unlock prompt",
            "Your photo check asks for a head turn or a blink, which only the unlock prompt "
            "can show, so FaceUnlock does not unlock this locked screen by itself. Face unlock "
            f"in the unlock prompt still works where it is set up (it asks there). {PASSWORD}",
        )
    if status == AuthStatus.LOCKED_OUT:
        return Notice(
            "locked-out",
            "Face unlock is paused",
            f"Your face was not recognised too many times in a row, so face unlock is paused "
            f"for a while. {PASSWORD}",
        )
    if status == AuthStatus.MODEL_ERROR:
        return Notice(
            "model-error",
            "Face unlock is not working",
            f"FaceUnlock's face recognition files are missing or damaged. {PASSWORD} "
            "Reinstalling FaceUnlock fixes this.",
            CRITICAL,
        )
    if status == AuthStatus.TEMPLATE_ERROR:
        return Notice(
            "template-error",
            "Face unlock is not working",
            f"Your saved face cannot be read (or was made with other face recognition "
            f"files). {PASSWORD} Then set up your face again "
            "(FaceUnlock menu → Re-enrol).",
            CRITICAL,
        )
    if status == AuthStatus.KEYRING_ERROR:
        return Notice(
            "keyring-error",
            "Face unlock is not working",
            f"The keyring that holds the key of your saved face is locked or not running. "
            f"{PASSWORD} Logging in with your password unlocks the keyring.",
        )
    if status == AuthStatus.NO_TEMPLATE:
        return Notice(
            "no-template",
            "Face unlock is not set up",
            f"FaceUnlock has no saved face for you. {PASSWORD} Then set up your face "
            "(FaceUnlock menu → Enrol).",
        )
    return None


def watcher_stopped_notice(message: str) -> Notice:
    """The notice for a lock-screen watcher that could not start or stopped on an error."""
    text = message.strip().rstrip(".")
    text = text[:1].upper() + text[1:]
    return Notice(
        "watcher-stopped", "Face unlock stopped", f"{text}. Your password still works.", CRITICAL
    )


class RateLimiter:
    """Lets each key through at most once per ``interval`` seconds of ``clock``."""

    def __init__(
        self, interval: float = REPEAT_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self.clock = clock
        self._last: dict[str, float] = {}

    def allow(self, key: str) -> bool:
        """True (and the key's time is noted) when ``key`` was not let through within the
        interval."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            return False
        self._last[key] = now
        return True

    def forget(self, key: str | None = None) -> None:
        """Let ``key`` (None: every key) through again at once."""
        if key is None:
            self._last.clear()
        else:
            self._last.pop(key, None)


class FileRateLimiter(RateLimiter):
    """A :class:`RateLimiter` whose times (wall clock, ``time.time``) are kept in ``path``
    (JSON, default ``notified.json`` in the user's state directory), so the limit holds
    across restarts of the process. A missing or unreadable file lets everything through;
    a file that cannot be written only costs the limit across restarts."""

    def __init__(
        self,
        path: str | Path | None = None,
        interval: float = REPEAT_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(interval, clock)
        self.path = Path(path) if path is not None else user_state_dir() / "notified.json"

    def allow(self, key: str) -> bool:
        self._load()
        if not super().allow(key):
            return False
        self._store()
        return True

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        if isinstance(data, dict):
            for k, v in data.items():
                if isinstance(v, int | float) and v > self._last.get(k, float("-inf")):
                    self._last[k] = float(v)

    def _store(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            tmp.write_text(json.dumps(self._last, sort_keys=True))
            os.replace(tmp, self.path)
        except OSError as e:
            log.info("cannot keep the notification times in %s: %s", self.path, e)


def error_icon() -> str:
    """The path of the error icon shown with the notices ($FACEUNLOCK_ICONS overrides the
    folder), or "" when it is missing."""
    env = os.environ.get("FACEUNLOCK_ICONS")
    icon = (Path(env) if env else assets_dir() / "icons") / "error.svg"
    return str(icon) if icon.is_file() else ""


def send_notification(
    summary: str,
    body: str,
    *,
    urgency: int = NORMAL,
    app_name: str = "FaceUnlock",
    icon: str = "",
    replaces_id: int = 0,
    expire_ms: int = -1,
    address: str | None = None,
) -> int:
    """Call ``org.freedesktop.Notifications.Notify`` on the session bus (or on ``address``)
    and return the notification id. Raises :class:`WatcherError` when there is no bus, no
    notification service, or it answers with an error."""
    conn = connect(address)
    try:
        msg = new_method_call(
            DBusAddress(OBJECT_PATH, BUS_NAME, INTERFACE),
            "Notify",
            "susssasa{sv}i",
            (
                app_name,
                replaces_id,
                icon,
                summary,
                body,
                [],
                {"urgency": ("y", urgency), "desktop-entry": ("s", "faceunlock")},
                expire_ms,
            ),
        )
        try:
            reply = conn.send_and_get_reply(msg, timeout=CALL_TIMEOUT)
        except TimeoutError as e:
            raise WatcherError(f"{BUS_NAME}: no reply within {CALL_TIMEOUT:g} s") from e
        except OSError as e:
            raise WatcherError(f"{BUS_NAME}: D-Bus connection lost ({e})") from e
    finally:
        conn.close()
    if reply.header.message_type == MessageType.error:
        text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
        raise WatcherError(f"{BUS_NAME} Notify failed: {text or 'error reply'}")
    return int(reply.body[0])


class Notifier:
    """Shows :class:`Notice` objects, each kind at most once per ``interval`` seconds.

    The freedesktop notification service is tried first (``address``: its bus, default the
    session bus); when it cannot be reached the notice goes to ``fallback(notice)`` (the tray
    icon's own balloon, for example), if given. A new notice replaces the previous one on
    screen instead of piling up. ``limiter``: the repeat limit to use instead of a
    ``RateLimiter(interval, clock)`` (a :class:`FileRateLimiter`, for example)."""

    def __init__(
        self,
        *,
        address: str | None = None,
        fallback: Callable[[Notice], None] | None = None,
        interval: float = REPEAT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        icon: str = "",
        limiter: RateLimiter | None = None,
    ) -> None:
        self.address = address
        self.fallback = fallback
        self.limiter = limiter if limiter is not None else RateLimiter(interval, clock)
        self.icon = icon
        self.last_id = 0
        self.shown: list[Notice] = []  #: every notice let through, oldest first

    def notify(self, notice: Notice) -> bool:
        """Show ``notice`` unless one of its kind was shown within the interval; True when
        it was shown (by the service or the fallback)."""
        if not self.limiter.allow(notice.kind):
            log.debug("notice %s not repeated within %g s", notice.kind, self.limiter.interval)
            return False
        self.shown.append(notice)
        try:
            self.last_id = send_notification(
                notice.summary,
                notice.body,
                urgency=notice.urgency,
                icon=self.icon,
                replaces_id=self.last_id,
                address=self.address,
            )
            return True
        except WatcherError as e:
            log.info("no desktop notification service (%s); using the fallback", e)
        if self.fallback is None:
            return False
        self.fallback(notice)
        return True
