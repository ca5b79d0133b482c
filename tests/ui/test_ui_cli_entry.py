"""`faceunlock` with no arguments starts the desktop app; without PyQt6 it says so."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest

from faceunlock import cli


def test_no_arguments_launches_the_gui(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    fake = SimpleNamespace(main=lambda argv: calls.append(argv) or 0)
    real = importlib.import_module

    def imp(name: str, *a: object) -> object:
        return fake if name == "faceunlock.ui.app" else real(name, *a)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib, "import_module", imp)
    assert cli.main([]) == 0
    assert calls == [[]]


def test_no_arguments_without_pyqt6_explains(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.import_module

    def imp(name: str, *a: object) -> object:
        if name == "faceunlock.ui.app":
            raise ImportError("No module named 'PyQt6'")
        return real(name, *a)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib, "import_module", imp)
    assert cli.main([]) == 1
    err = capsys.readouterr().err
    assert "PyQt6" in err and "faceunlock --help" in err


def test_arguments_still_run_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    assert "usage" in capsys.readouterr().out.lower()
