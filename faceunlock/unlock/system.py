"""``faceunlock system enable|disable|status``: switch the PAM face line on or off, and report
what is installed system-wide (``packaging/install.sh`` installs the files).

The helper is the one the installed pam-auth-update profile names (``/usr/bin/faceunlock-auth``
from the Debian package, ``/usr/local/bin/faceunlock-auth`` from ``packaging/install.sh``); with
no profile, the packaged one when it is there, else the script's (:func:`helper_path`).

``enable``/``disable`` use ``pam-auth-update --enable|--disable faceunlock`` where it exists
(Debian, Ubuntu); elsewhere they print the line to add to (or remove from) each service's file
in ``/etc/pam.d``. ``root`` is a prefix for every system path, for tests: with a root other than
``/`` nothing is run, only reported. Standard library only (no Qt, no torch).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceunlock.errors import InputError, RootRequiredError
from faceunlock.paths import SYSTEM_DATA_DIR, app_root, repo_root

#: the PAM helper packaging/install.sh installs
HELPER = "/usr/local/bin/faceunlock-auth"
#: the PAM helper of the Debian package (packaging/deb)
PACKAGED_HELPER = "/usr/bin/faceunlock-auth"
PROFILE = "/usr/share/pam-configs/faceunlock"
COMMON_AUTH = "/etc/pam.d/common-auth"
SYSTEM_DIR = str(SYSTEM_DATA_DIR)
USER_UNIT = "/usr/lib/systemd/user/faceunlock-watch.service"
MANIFEST = f"{SYSTEM_DIR}/install-manifest.json"
PAM_AUTH_UPDATE_DIRS = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")


def pam_line(helper: str) -> str:
    """The line for distributions without pam-auth-update (first ``auth`` line of each
    service) running ``helper``."""
    return f"auth  sufficient  pam_exec.so quiet stdout {helper}"


#: :func:`pam_line` of packaging/install.sh's helper
PAM_LINE = pam_line(HELPER)
#: service files for PAM_LINE (see packaging/pam/README.md)
PAM_SERVICES = (
    ("/etc/pam.d/gdm-password", "GDM login and GNOME lock screen"),
    ("/etc/pam.d/sddm", "SDDM login"),
    ("/etc/pam.d/kde", "KDE lock screen"),
    ("/etc/pam.d/lightdm", "LightDM"),
    ("/etc/pam.d/sudo", "sudo"),
    ("/etc/pam.d/polkit-1", "polkit (pkexec, admin dialogs)"),
)

Runner = Callable[[Sequence[str]], int]


def _path(root: Path, absolute: str) -> Path:
    return root / absolute.lstrip("/")


def _is_real_root(root: Path) -> bool:
    return root.resolve() == Path("/")


def _uses_helper(path: Path) -> bool:
    try:
        return "faceunlock-auth" in path.read_text(errors="replace")
    except OSError:
        return False


def _profile_helper(profile: Path) -> str | None:
    """The absolute ``.../faceunlock-auth`` path a pam-auth-update profile's pam_exec runs."""
    try:
        text = profile.read_text(errors="replace")
    except OSError:
        return None
    for word in text.split():
        if word.startswith("/") and word.endswith("/faceunlock-auth"):
            return word
    return None


def helper_path(root: str | Path = "/") -> str:
    """The PAM helper of the installation under ``root`` (an absolute path on that system):
    the one the installed profile names; else the Debian package's when present; else
    ``packaging/install.sh``'s."""
    r = Path(root)
    named = _profile_helper(_path(r, PROFILE))
    if named is not None:
        return named
    if _path(r, PACKAGED_HELPER).is_file():
        return PACKAGED_HELPER
    return HELPER


def find_pam_auth_update(root: Path) -> Path | None:
    """``pam-auth-update`` of the system under ``root`` (None on non-Debian systems)."""
    for d in PAM_AUTH_UPDATE_DIRS:
        p = _path(root, d) / "pam-auth-update"
        if p.is_file() and os.access(p, os.X_OK):
            return p
    if _is_real_root(root):
        found = shutil.which("pam-auth-update")
        return Path(found) if found else None
    return None


def _file_info(path: Path, absolute: str) -> dict[str, Any]:
    info: dict[str, Any] = {"path": absolute, "present": path.is_file()}
    if info["present"]:
        st = path.stat()
        info["mode"] = f"{st.st_mode & 0o7777:04o}"
        info["root_owned"] = st.st_uid == 0
    return info


def status(root: str | Path = "/") -> dict[str, Any]:
    """What is installed and enabled under ``root``; JSON-serialisable."""
    r = Path(root)
    hp = helper_path(r)
    helper = _file_info(_path(r, hp), hp)
    if helper["present"]:
        # the helper runs as root: it must be root-owned and writable by root only (ownership
        # is not checked under a test root, which an unprivileged user may have made)
        owner_ok = bool(helper["root_owned"]) or not _is_real_root(r)
        helper["secure"] = owner_ok and int(helper["mode"], 8) & 0o022 == 0
    common = _path(r, COMMON_AUTH)
    pau = find_pam_auth_update(r)
    pam_dir = _path(r, "/etc/pam.d")
    services = (
        sorted(
            "/" + str(p.relative_to(r))
            for p in pam_dir.iterdir()
            if p.is_file() and p.name != "common-auth" and _uses_helper(p)
        )
        if pam_dir.is_dir()
        else []
    )
    sysdir = _path(r, SYSTEM_DIR)
    try:
        tpls = sorted(sysdir.glob("*.tpl")) if sysdir.is_dir() else []
    except PermissionError:
        tpls = []
    templates = [{"user": p.stem, "path": f"{SYSTEM_DIR}/{p.name}"} for p in tpls]
    return {
        "root": str(r),
        "helper": helper,
        "profile": _file_info(_path(r, PROFILE), PROFILE),
        "pam": {
            "pam_auth_update": str(pau) if pau else None,
            "common_auth": COMMON_AUTH,
            "enabled": _uses_helper(common),
            "services": services,
        },
        "templates": templates,
        "user_unit": _file_info(_path(r, USER_UNIT), USER_UNIT),
        "installed_by_script": _path(r, MANIFEST).is_file(),
    }


def format_status(st: dict[str, Any]) -> str:
    def yes(b: object) -> str:
        return "yes" if b else "no"

    h = st["helper"]
    lines = [f"helper     {h['path']}: {'installed' if h['present'] else 'missing'}"]
    if h["present"] and not h.get("secure", True):
        lines[-1] += f" (INSECURE: mode {h['mode']}, root-owned {yes(h['root_owned'])})"
    p = st["profile"]
    lines.append(f"profile    {p['path']}: {'installed' if p['present'] else 'missing'}")
    pam = st["pam"]
    if pam["pam_auth_update"]:
        lines.append(f"PAM        {pam['common_auth']}: face line "
                     f"{'ENABLED' if pam['enabled'] else 'not enabled'}")
    else:
        lines.append("PAM        no pam-auth-update on this system")
    for s in pam["services"]:
        lines.append(f"PAM        {s}: face line present")
    if st["templates"]:
        for t in st["templates"]:
            lines.append(f"template   {t['user']}: {t['path']}")
    else:
        lines.append("template   none (run `faceunlock system-copy` as each user)")
    u = st["user_unit"]
    lines.append(f"user unit  {u['path']}: {'installed' if u['present'] else 'missing'}")
    return "\n".join(lines)


@dataclass
class Plan:
    """What ``enable``/``disable`` did or would do."""

    action: str
    command: list[str] | None = None
    ran: bool = False
    returncode: int | None = None
    messages: list[str] = field(default_factory=list)


def _require_root(action: str, root: Path, dry_run: bool) -> None:
    if _is_real_root(root) and not dry_run and os.geteuid() != 0:
        raise RootRequiredError(f"`faceunlock system {action}`")


def _run(cmd: Sequence[str]) -> int:
    return subprocess.run(list(cmd), check=False).returncode


def _switch(action: str, root: str | Path, dry_run: bool, runner: Runner | None) -> Plan:
    r = Path(root)
    _require_root(action, r, dry_run)
    enable = action == "enable"
    plan = Plan(action)
    st = status(r)
    hp = st["helper"]["path"]
    if enable and not st["helper"]["present"]:
        raise InputError(
            f"{hp} is not installed under {r}: run `{INSTALL_COMMAND}` first"
        )
    if enable and not st["helper"].get("secure", True):
        raise InputError(
            f"{hp} must be root-owned and writable by root only "
            f"(mode {st['helper']['mode']}): fix it or rerun `{INSTALL_COMMAND}`"
        )
    pau = find_pam_auth_update(r)
    if pau is not None:
        if enable and not st["profile"]["present"]:
            raise InputError(
                f"{PROFILE} is not installed under {r}: run `{INSTALL_COMMAND}` first"
            )
        plan.command = ["pam-auth-update", f"--{action}", "faceunlock"]
        cmdline = " ".join(plan.command)
        if dry_run or not _is_real_root(r):
            plan.messages.append(f"would run: {cmdline}")
        else:
            plan.returncode = (runner or _run)(plan.command)
            plan.ran = True
            if plan.returncode != 0:
                raise InputError(f"`{cmdline}` failed with exit code {plan.returncode}")
            now = _uses_helper(_path(r, COMMON_AUTH))
            if now != enable:
                plan.messages.append(
                    f"warning: {COMMON_AUTH} {'does not use' if enable else 'still uses'} "
                    "faceunlock-auth (was the profile deselected in pam-auth-update's dialog?)"
                )
            else:
                plan.messages.append(f"ran: {cmdline}")
    elif enable:
        plan.messages.append(
            "no pam-auth-update here: add this as the FIRST auth line of each service you want"
        )
        plan.messages.append(f"    {pam_line(hp)}")
        plan.messages += [f"  {path:28} {what}" for path, what in PAM_SERVICES]
        plan.messages.append(
            "(Fedora/RHEL: use an authselect profile; see packaging/pam/README.md)"
        )
    else:
        files = st["pam"]["services"] + ([COMMON_AUTH] if st["pam"]["enabled"] else [])
        if files:
            plan.messages.append("no pam-auth-update here: delete the faceunlock-auth line from")
            plan.messages += [f"  {f}" for f in files]
        else:
            plan.messages.append("no file in /etc/pam.d uses faceunlock-auth: nothing to do")
    if enable and not st["templates"]:
        plan.messages.append(
            "note: no user has a system template yet: run `faceunlock system-copy` as each user"
        )
    if enable:
        plan.messages.append(f"the password always keeps working; undo: {UNDO_COMMAND}")
    return plan


def enable(root: str | Path = "/", *, dry_run: bool = False, runner: Runner | None = None) -> Plan:
    """Turn the PAM face line on (root only, unless ``dry_run`` or a test ``root``)."""
    return _switch("enable", root, dry_run, runner)


def disable(
    root: str | Path = "/", *, dry_run: bool = False, runner: Runner | None = None
) -> Plan:
    """Turn the PAM face line off (root only, unless ``dry_run`` or a test ``root``)."""
    return _switch("disable", root, dry_run, runner)


def command_path() -> str:
    """This installation's ``faceunlock`` script by absolute path, for advice that runs
    through pkexec or sudo (their PATH has neither ~/.local/bin nor the venv); plain
    ``faceunlock`` where there is no such script beside the interpreter."""
    p = Path(sys.executable).parent / "faceunlock"
    return shlex.quote(str(p)) if p.is_file() and os.access(p, os.X_OK) else "faceunlock"


def _install_command() -> str:
    p = repo_root() / "packaging" / "install.sh"
    if p.is_file():
        return f"sudo {shlex.quote(str(p))}"
    if app_root() != repo_root():  # the Debian package's layout: it ships the helper
        return "sudo apt-get install --reinstall faceunlock"
    return "sudo packaging/install.sh"


#: how a person undoes ``enable`` (shown next to every offer to enable): works as typed, from
#: any directory
UNDO_COMMAND = f"pkexec {command_path()} system disable"
#: how the system files are installed, as typed from any directory
INSTALL_COMMAND = _install_command()


@dataclass
class EnablePreview:
    """What ``faceunlock system enable`` would change under a root, in words, before anybody
    agrees to it. ``problem``: why it cannot run now (None: it can); ``summary``: the file it
    edits and how (or, where it edits nothing, what to do by hand); ``lines``: the exact PAM
    lines (then, by hand, the service files to put them in); ``automatic``: False where
    ``enable`` only prints instructions (no pam-auth-update)."""

    problem: str | None
    summary: str
    lines: list[str]
    automatic: bool
    undo: str = UNDO_COMMAND


def _profile_lines(profile: Path) -> list[str]:
    """The ``Auth:`` lines of a pam-auth-update profile file (empty when unreadable)."""
    try:
        text = profile.read_text(errors="replace")
    except OSError:
        return []
    out: list[str] = []
    in_auth = False
    for line in text.splitlines():
        if line and not line[0].isspace():
            in_auth = line.strip() == "Auth:"
        elif in_auth and line.strip():
            out.append(" ".join(line.split()))
    return out


def enable_preview(root: str | Path = "/") -> EnablePreview:
    """Describe ``enable`` under ``root`` without changing anything (no root rights needed):
    the dry run's checks, then the files it would edit and the lines it would add."""
    r = Path(root)
    problem: str | None = None
    try:
        enable(r, dry_run=True)
    except InputError as e:
        problem = str(e)
    if find_pam_auth_update(r) is not None:
        # the installed profile, else the one packaging/install.sh would install
        lines = (
            _profile_lines(_path(r, PROFILE))
            or _profile_lines(repo_root() / "packaging" / "pam" / "faceunlock")
            or [pam_line(helper_path(r))]
        )
        summary = (
            f"It runs `pam-auth-update --enable faceunlock`, which edits {COMMON_AUTH} (shared "
            "by the login screen, the lock screen, sudo and polkit): the auth lines of the "
            f"profile {PROFILE} are added to it:"
        )
        return EnablePreview(problem, summary, lines, True)
    summary = (
        "This system has no pam-auth-update, so no file is changed automatically. Add this as "
        "the first auth line of each service file you want:"
    )
    manual = [pam_line(helper_path(r)), *(f"{path}   ({what})" for path, what in PAM_SERVICES)]
    return EnablePreview(problem, summary, manual, False)
