"""The root-only system copy of a template, read at the login screen: ``faceunlock
system-copy``.

The user's side (:func:`request`) decrypts the template with the user's keyring key and pipes
its payload to ``pkexec``/``sudo python -I -m faceunlock system-copy --user U --stdin``. The
root side (:func:`install_from`) checks who asked (``PKEXEC_UID``/``SUDO_UID``: a user may
install only their own template), checks the payload names that user, and writes it with
:func:`faceunlock.engine.templates.install_system_copy` (``/var/lib/faceunlock/<user>.tpl``,
re-encrypted with the root-only key).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from faceunlock.engine.templates import (
    SystemTemplateStore,
    Template,
    TemplateStore,
    install_system_copy,
)
from faceunlock.errors import InputError, RootRequiredError
from faceunlock.paths import isolated_command


def elevation_command(user: str) -> list[str]:
    """The command that runs the root side for ``user``: pkexec (else sudo), and Python
    isolated (``-I``), so nothing from the caller's folder (an ``argparse.py`` there),
    PYTHONPATH or user site-packages is imported as root."""
    elevate = shutil.which("pkexec") or shutil.which("sudo")
    if not elevate:
        raise RootRequiredError("installing the system copy (neither pkexec nor sudo found)")
    return [elevate, *isolated_command(), "system-copy", "--user", user, "--stdin"]


def request(user: str, store: TemplateStore, env: Mapping[str, str]) -> int:
    """As the user: hand ``user``'s template (from ``store``) to the elevated root side;
    returns its exit status. As root (``env`` names who elevated) this refuses: root has no
    access to the user's keyring, the template comes on standard input (``--stdin``)."""
    if os.geteuid() == 0:
        check_caller(user, env)
        raise InputError(
            "as root, pass the template on standard input with --stdin "
            "(run `faceunlock system-copy` as the user instead)"
        )
    payload = store.load(user).to_payload()
    cmd = elevation_command(user)
    return subprocess.run(cmd, input=payload, check=False).returncode


def check_caller(user: str, env: Mapping[str, str]) -> None:
    """As root: refuse (InputError) when the user who elevated (``PKEXEC_UID``, else
    ``SUDO_UID``, in ``env``) is not root and is not ``user``."""
    caller_uid = env.get("PKEXEC_UID") or env.get("SUDO_UID")
    if caller_uid is not None and int(caller_uid) != 0:
        caller = pwd.getpwuid(int(caller_uid)).pw_name
        if caller != user:
            raise InputError(f"{caller} may only install their own template, not {user}'s")


def install_from(
    user: str,
    stdin: BinaryIO,
    env: Mapping[str, str],
    system_store: SystemTemplateStore | None = None,
) -> Path:
    """As root: write the system copy of ``user``'s template from the payload on ``stdin``
    (:meth:`Template.to_payload` bytes) after :func:`check_caller`; returns its path."""
    if os.geteuid() != 0:
        raise RootRequiredError("reading a template for the system copy")
    check_caller(user, env)
    t = Template.from_payload(stdin.read(), origin="<stdin>")
    if t.user != user:
        raise InputError(f"the template on stdin belongs to {t.user!r}, not {user!r}")
    return install_system_copy(t, system_store or SystemTemplateStore())
