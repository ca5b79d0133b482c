"""The runtime set-up (``scripts/setup.sh`` without ``--dev``, what ``./run.sh`` runs) installs
every system library that the Qt plugins the app may load need.

For each plugin below, every library ``ldd`` lists must resolve ("not found" fails), and each
resolved file outside the PyQt6 wheel must come from a Debian package (``dpkg -S``) that
``setup.sh --print-apt-runtime`` lists, or that apt installs with one it lists (its Depends,
recursively), or that every Debian system has: Essential, or Priority required/important, or
their Depends (libc6, zlib1g... are Priority optional since Debian 12, but essential packages
depend on them).

The plugins the app may load, and why:

* ``platforms/libqxcb.so``: X11 desktops, and Wayland desktops through XWayland; Qt's default
  platform on Linux, and its fallback after wayland;
* ``platforms/libqwayland.so`` with its ``wayland-shell-integration/libxdg-shell.so`` (the
  window shell of every desktop compositor) and ``wayland-decoration-client/*`` (title bars
  where the compositor draws none, e.g. GNOME): Qt 6 tries wayland first when
  ``WAYLAND_DISPLAY`` is set or ``XDG_SESSION_TYPE`` is wayland;
* ``platforminputcontexts/*``: keyboard input (compose keys by default; IBus with
  ``QT_IM_MODULE=ibus``);
* ``iconengines/libqsvgicon.so`` and ``imageformats/libqsvg.so``: the tray's SVG icons;
* ``platformthemes/libqxdgdesktopportal.so``: the portal theme (Flatpak, Snap, or
  ``QT_QPA_PLATFORMTHEME=xdgdesktopportal``);
* the PyQt6 modules the app imports (QtCore, QtGui, QtWidgets, QtNetwork).

Not checked: ``offscreen``, ``minimal``, ``vnc``, ``eglfs``, ``linuxfb``... (never picked on
a desktop unless asked for by ``QT_QPA_PLATFORM``); ``xcbglintegrations`` and
``wayland-graphics-integration-client`` (OpenGL only: the app paints with QPainter, and Qt
loads them on first OpenGL use); ``platformthemes/libqgtk3.so`` (GTK 3 itself: loaded only
on GTK desktops, which have GTK 3, and skipped by Qt when it cannot load).

Skipped only where there is no ``dpkg-query`` or ``ldd`` (not Debian/Ubuntu).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PLUGINS = [
    "platforms/libqxcb.so",
    "platforms/libqwayland.so",
    "wayland-shell-integration/libxdg-shell.so",
    "wayland-decoration-client/*.so",
    "platforminputcontexts/*.so",
    "iconengines/libqsvgicon.so",
    "imageformats/libqsvg.so",
    "platformthemes/libqxdgdesktopportal.so",
]
MODULES = ["QtCore", "QtGui", "QtWidgets", "QtNetwork"]


def runtime_packages() -> list[str]:
    """The runtime Debian packages, from setup.sh itself."""
    out = subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh"), "--print-apt-runtime"],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    return out.split()


def pyqt_dir() -> Path:
    import PyQt6

    return Path(PyQt6.__file__).resolve().parent


def checked_files() -> list[Path]:
    pyqt = pyqt_dir()
    plugins = pyqt / "Qt6" / "plugins"
    files: list[Path] = []
    for pattern in PLUGINS:
        found = sorted(plugins.glob(pattern))
        assert found, f"this PyQt6 has no {pattern} under {plugins}"
        files += found
    for mod in MODULES:
        found = sorted(pyqt.glob(f"{mod}.*so"))
        assert found, f"no PyQt6.{mod} extension module in {pyqt}"
        files += found
    return files


LDD_LINE = re.compile(r"^\s*(\S+)\s+=>\s+(.*?)\s*(\(0x[0-9a-f]+\))?$")


def ldd(path: Path) -> tuple[dict[str, Path], list[str]]:
    """``path``'s libraries: soname -> the file it resolves to, and the sonames not found."""
    out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"ldd {path}: {out.stderr}"
    found: dict[str, Path] = {}
    missing: list[str] = []
    for line in out.stdout.splitlines():
        m = LDD_LINE.match(line)
        if not m:
            continue  # linux-vdso.so.1, the dynamic loader itself
        name, target = m.group(1), m.group(2)
        if target == "not found":
            missing.append(name)
        elif target:
            found[name] = Path(target)
    return found, missing


def owners(files: Iterable[Path]) -> dict[Path, str]:
    """The Debian package that ships each file (merged /usr: tried under both names)."""
    wanted: dict[str, Path] = {}
    for f in files:
        for p in {f, f.resolve()}:
            s = str(p)
            wanted[s] = f
            wanted[s.removeprefix("/usr")] = f
            if not s.startswith("/usr/"):
                wanted["/usr" + s] = f
    out = subprocess.run(["dpkg-query", "-S", *sorted(wanted)], capture_output=True, text=True,
                         timeout=120)
    result: dict[Path, str] = {}
    for line in out.stdout.splitlines():
        if line.startswith("diversion by"):
            continue
        pkgs, _, path = line.rpartition(": ")
        if path in wanted:
            # "libxcb1:amd64" (or "a, b" for a file in two packages): the first, arch dropped
            result[wanted[path]] = pkgs.split(",")[0].strip().split(":")[0]
    return result


def installed_packages() -> dict[str, tuple[bool, str, list[list[str]]]]:
    """Installed package -> (is the base system, its priority, its Depends + Pre-Depends as
    alternatives), with each Provides name also mapping to its provider."""
    fmt = (r"${db:Status-Abbrev}|${Package}|${Essential}|${Priority}|${Provides}"
           r"|${Depends}, ${Pre-Depends}\n")
    out = subprocess.run(["dpkg-query", "-W", "-f", fmt], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    pkgs: dict[str, tuple[bool, str, list[list[str]]]] = {}
    provides: dict[str, str] = {}

    def names(field: str) -> list[list[str]]:
        groups = []
        for group in field.split(","):
            alts = [re.sub(r"[:\s(].*", "", a.strip()) for a in group.split("|")]
            if alts := [a for a in alts if a]:
                groups.append(alts)
        return groups

    for line in out.splitlines():
        status, name, essential, priority, prov, deps = line.split("|", 5)
        if not status.startswith("ii"):
            continue
        base = essential == "yes" or priority in ("required", "important")
        pkgs[name] = (base, priority, names(deps))
        for p in names(prov):
            provides.setdefault(p[0], name)
    for virtual, real in provides.items():
        pkgs.setdefault(virtual, pkgs[real])
    return pkgs


def closure(roots: Iterable[str], pkgs: dict[str, tuple[bool, str, list[list[str]]]]
            ) -> set[str]:
    """``roots`` and every installed package they depend on, recursively."""
    seen: set[str] = set()
    todo = [r for r in roots if r in pkgs]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        for alts in pkgs[p][2]:
            todo += [a for a in alts if a in pkgs and a not in seen]
    return seen


def _t64(name: str) -> str:
    """Ubuntu 24.04's t64 library names (libglib2.0-0t64) are the same packages."""
    return name.removesuffix("t64")


@pytest.fixture(scope="module")
def resolved() -> dict[Path, dict[str, Path]]:
    if shutil.which("dpkg-query") is None or shutil.which("ldd") is None:
        pytest.skip("not a Debian/Ubuntu system (no dpkg-query or ldd)")
    pytest.importorskip("PyQt6")
    result: dict[Path, dict[str, Path]] = {}
    missing: dict[str, list[str]] = {}
    for f in checked_files():
        found, lost = ldd(f)
        result[f] = found
        if lost:
            missing[str(f.relative_to(pyqt_dir()))] = lost
    assert not missing, f"libraries not found (run `bash scripts/setup.sh`): {missing}"
    return result


def test_runtime_list_comes_from_setup_sh() -> None:
    pkgs = runtime_packages()
    assert "libxcb-cursor0" in pkgs and "libxkbcommon-x11-0" in pkgs
    assert "xvfb" not in pkgs and "pamtester" not in pkgs  # test tools stay in --dev
    assert len(pkgs) == len(set(pkgs))


def test_every_plugin_library_resolves(resolved: dict[Path, dict[str, Path]]) -> None:
    names = {n for libs in resolved.values() for n in libs}
    assert {"libxcb-cursor.so.0", "libxkbcommon-x11.so.0", "libwayland-client.so.0"} <= names


def test_every_library_comes_from_the_runtime_setup(
    resolved: dict[Path, dict[str, Path]]
) -> None:
    pyqt = pyqt_dir()
    system = {p for libs in resolved.values() for p in libs.values()
              if not p.resolve().is_relative_to(pyqt)}
    owner = owners(system)
    unowned = sorted(str(p) for p in system if p not in owner)
    assert not unowned, f"files no Debian package ships: {unowned}"

    pkgs = installed_packages()
    runtime = {_t64(p) for p in runtime_packages()}
    named = [p for p in pkgs if _t64(p) in runtime]
    base = closure([p for p, (is_base, _, _) in pkgs.items() if is_base], pkgs)
    allowed = {_t64(p) for p in closure(named, pkgs) | base}
    needed_by: dict[str, set[str]] = {}
    for f, libs in resolved.items():
        for name, p in libs.items():
            if p in owner and _t64(owner[p]) not in allowed:
                needed_by.setdefault(owner[p], set()).add(f"{name} ({f.name})")
    assert not needed_by, (
        "Debian packages that the runtime set-up does not install; add them to APT_RUNTIME "
        f"in scripts/setup.sh: { {k: sorted(v) for k, v in sorted(needed_by.items())} }"
    )


def test_a_missing_library_is_reported(tmp_path: Path) -> None:
    """The check can fail: Qt's xcb plugin with its ``libxcb-cursor.so.0`` renamed to a library
    no system has is what ldd shows on a desktop without libxcb-cursor0."""
    if shutil.which("ldd") is None:
        pytest.skip("no ldd")
    pytest.importorskip("PyQt6")
    real = pyqt_dir() / "Qt6"
    (tmp_path / "Qt6" / "plugins" / "platforms").mkdir(parents=True)
    (tmp_path / "Qt6" / "lib").symlink_to(real / "lib")  # the plugin's $ORIGIN/../../lib
    patched = tmp_path / "Qt6" / "plugins" / "platforms" / "libqxcb.so"
    data = (real / "plugins" / "platforms" / "libqxcb.so").read_bytes()
    patched.write_bytes(data.replace(b"libxcb-cursor.so.0\0", b"libxcb-cursor.so.9\0"))
    found, missing = ldd(patched)
    assert missing == ["libxcb-cursor.so.9"]
    assert "libxcb-icccm.so.4" in found and "libxcb-cursor.so.0" in found  # via libQt6XcbQpa
