"""Every file location FaceUnlock uses, computed on call (never at import time)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

MODELS_ENV = "FACEUNLOCK_MODELS"


def models_dir() -> Path:
    """Directory holding ``encoder.onnx``, ``detector.onnx``, ``landmarks5.npz`` and sidecars.

    Order: ``$FACEUNLOCK_MODELS``; the ``models/`` folder of :func:`app_root` (source
    checkout, editable install, or the Debian package's ``/usr/lib/faceunlock/models``);
    ``<prefix>/share/faceunlock/models`` (wheel install).
    """
    env = os.environ.get(MODELS_ENV)
    if env:
        return Path(env)
    beside = app_root() / "models"
    if beside.is_dir():
        return beside
    return Path(sys.prefix) / "share" / "faceunlock" / "models"


def repo_root() -> Path:
    """The folder holding the ``faceunlock`` package: the checkout (or, installed, the
    site-packages folder)."""
    return Path(__file__).resolve().parent.parent


def app_root() -> Path:
    """The folder holding ``models/`` and ``assets/``: the checkout, or in the packaged layout
    (``packaging/deb``: the package in ``/usr/lib/faceunlock/lib/faceunlock``, the models in
    ``/usr/lib/faceunlock/models``) the folder above ``lib``."""
    top = repo_root()
    if top.name == "lib" and not (top / "models").is_dir() and (top.parent / "models").is_dir():
        return top.parent
    return top


def isolated_command() -> list[str]:
    """How to start ``faceunlock`` in isolated mode (``python -I``: no PYTHONPATH, user
    site-packages or current folder) for a command run as root through pkexec or sudo: this
    interpreter with ``-I -m faceunlock`` (a checkout's venv, a wheel install); in the packaged
    layout, where the isolated interpreter does not see the app's ``lib`` folder, the
    package's own wrapper ``/usr/bin/faceunlock`` (which runs ``python3 -I`` itself)."""
    root = app_root()
    if root != repo_root():
        wrapper = root.parent.parent / "bin" / "faceunlock"  # /usr/lib/faceunlock -> /usr/bin
        if wrapper.is_file():
            return [str(wrapper)]
    return [sys.executable, "-I", "-m", "faceunlock"]


def assets_dir() -> Path:
    """The app's own images (``icons/``: the tray states)."""
    return app_root() / "assets"


def shared_dir() -> Path:
    """The workplace's ``../shared`` beside the checkout (datasets, notes); may not exist."""
    env = os.environ.get("FACEUNLOCK_SHARED")
    if env:
        return Path(env)
    return repo_root().parent / "shared"


def user_data_dir() -> Path:
    """Per-user data directory (face templates): ``$XDG_DATA_HOME/faceunlock`` when
    ``XDG_DATA_HOME`` is set to an absolute path, else platformdirs' ``user_data_dir``."""
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "faceunlock"
    return Path(platformdirs.user_data_dir("faceunlock", appauthor=False))


SYSTEM_DATA_DIR = Path("/var/lib/faceunlock")


def system_data_dir() -> Path:
    """Root-only directory holding the system copies of templates read at the login screen.

    Deliberately *not* overridable by an environment variable: the PAM helper runs as root in
    an environment partly controlled by the user, who must not be able to redirect it.
    """
    return SYSTEM_DATA_DIR


CONFIG_ENV = "FACEUNLOCK_CONFIG"


def config_path() -> Path:
    """The user's config file.

    Order: ``$FACEUNLOCK_CONFIG``; ``$XDG_CONFIG_HOME/faceunlock/config.toml`` (an unset, empty
    or relative ``XDG_CONFIG_HOME`` means ``~/.config``, as the XDG spec says).
    """
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".config"
    return base / "faceunlock" / "config.toml"


def user_state_dir() -> Path:
    """Per-user state (failure counter, snapshots): ``$XDG_STATE_HOME/faceunlock``."""
    xdg = os.environ.get("XDG_STATE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "faceunlock"
    return Path.home() / ".local" / "state" / "faceunlock"


VIDEO4LINUX_ENV = "FACEUNLOCK_VIDEO4LINUX"


def video4linux_dir() -> Path:
    """Where the kernel lists the V4L2 devices: ``/sys/class/video4linux`` (one ``videoN``
    folder each, with a ``name`` file). ``$FACEUNLOCK_VIDEO4LINUX`` points it at a fake tree
    (tests); only the camera pickers read it, never the PAM helper."""
    env = os.environ.get(VIDEO4LINUX_ENV)
    return Path(env) if env else Path("/sys/class/video4linux")
