"""`faceunlock` with no arguments starts the desktop app; without PyQt6 it says so."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from faceunlock import cli


def test_no_arguments_launches_the_gui(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    fake = SimpleNamespace(main=lambda argv: calls.append(argv) or 0)
    monkeypatch.setitem(sys.modules, "faceunlock.ui.app", fake)
    assert cli.main([]) == 0
    assert calls == [[]]


def test_no_arguments_without_pyqt6_explains(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "faceunlock.ui.app", None)  # its import fails
    assert cli.main([]) == 1
    err = capsys.readouterr().err
    assert "PyQt6" in err and "faceunlock --help" in err


def test_arguments_still_run_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    assert "usage" in capsys.readouterr().out.lower()
