"""Drop the parts of the PyQt6 wheels FaceUnlock never loads (QML, Quick, 3D, multimedia,
PDF, web, designer ...) from a ``pip install --target`` folder: a third of the package.

Kept: the bindings ``KEEP_BINDINGS`` (what ``faceunlock.ui`` imports, and QtDBus/QtSvg), the
plugin folders ``KEEP_PLUGINS`` (window systems, themes, input methods, image formats, the
SVG icon engine, TLS), Qt's own ``qtbase`` translations, and every library of ``Qt6/lib``
those need (the transitive ``DT_NEEDED`` closure, read with ``readelf -d``). The wheels'
``RECORD`` files lose the lines of what was removed.

    python3 packaging/deb/prune_qt.py LIB_DIR
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

KEEP_BINDINGS = {"QtCore", "QtGui", "QtWidgets", "QtNetwork", "QtDBus", "QtSvg"}
KEEP_PLUGINS = {
    "platforms",
    "platformthemes",
    "platforminputcontexts",
    "xcbglintegrations",
    "egldeviceintegrations",
    "wayland-decoration-client",
    "wayland-graphics-integration-client",
    "wayland-shell-integration",
    "iconengines",
    "imageformats",
    "generic",
    "tls",
    "networkinformation",
}
DROP_DIRS = ("qml", "qsci", "bindings", "uic", "lupdate")


def needed(so: Path) -> set[str]:
    out = subprocess.run(
        ["readelf", "-d", str(so)], capture_output=True, text=True, check=True
    ).stdout
    return set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out))


def prune(lib: Path) -> list[Path]:
    pyqt = lib / "PyQt6"
    qt = pyqt / "Qt6"
    if not (qt / "lib").is_dir():
        raise SystemExit(f"prune_qt.py: {qt / 'lib'} not found (is PyQt6 installed there?)")
    removed: list[Path] = []

    def drop(p: Path) -> None:
        removed.extend([p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()])
        shutil.rmtree(p) if p.is_dir() else p.unlink()

    for f in sorted(pyqt.glob("Qt*.abi3.so")) + sorted(pyqt.glob("Qt*.pyi")):
        if f.name.split(".")[0] not in KEEP_BINDINGS:
            drop(f)
    for name in DROP_DIRS:
        for d in (qt / name, pyqt / name):
            if d.is_dir():
                drop(d)
    for d in sorted((qt / "plugins").iterdir()):
        if d.name not in KEEP_PLUGINS:
            drop(d)
    for f in sorted((qt / "translations").glob("*.qm")):
        if not f.name.startswith("qtbase_"):
            drop(f)
    libs = {f.name: f for f in (qt / "lib").iterdir() if ".so" in f.name}
    todo = [*pyqt.glob("*.abi3.so"), *(qt / "plugins").rglob("*.so")]
    keep: set[str] = set()
    while todo:
        for name in needed(todo.pop()):
            if name in libs and name not in keep:
                keep.add(name)
                todo.append(libs[name])
    for name, f in sorted(libs.items()):
        if name not in keep:
            drop(f)
    gone = {str(p.relative_to(lib)) for p in removed}
    for record in lib.glob("pyqt6*.dist-info/RECORD"):
        lines = record.read_text().splitlines(keepends=True)
        record.write_text("".join(ln for ln in lines if ln.split(",")[0] not in gone))
    return removed


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: prune_qt.py LIB_DIR")
    gone = prune(Path(sys.argv[1]))
    print(f"prune_qt.py: removed {len(gone)} files of the PyQt6 wheels", file=sys.stderr)
