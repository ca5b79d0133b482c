"""The calibration plot: other people's distances (the sidecar's impostor histogram) as a
filled curve, the user's distances as bars, the threshold line; a note without the curve."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from PyQt6.QtGui import QColor, QImage
from pytestqt.qtbot import QtBot

from faceunlock.engine import calibration as cal
from faceunlock.engine.modelfile import load_sidecar
from faceunlock.errors import InputError
from faceunlock.paths import models_dir
from faceunlock.ui.widgets import CalibrationPanel, DistancePlot

GENUINE = np.array([0.18, 0.22, 0.24, 0.26, 0.31])


@pytest.fixture(scope="module")
def far_json() -> dict[str, Any]:
    meta = load_sidecar(models_dir() / "encoder.onnx")
    if "impostor_histogram" not in meta.get("far_table", {}):
        pytest.skip("this encoder sidecar has no impostor histogram")
    return dict(meta["far_table"])


def _near(img: QImage, colour: QColor, tol: int = 40) -> int:
    """How many pixels are within ``tol`` of ``colour`` (each channel)."""
    ptr = img.convertToFormat(QImage.Format.Format_RGB888)
    a = np.frombuffer(ptr.constBits().asstring(ptr.sizeInBytes()), np.uint8)  # type: ignore[union-attr]
    a = a.reshape(ptr.height(), ptr.bytesPerLine())[:, : 3 * ptr.width()].reshape(
        ptr.height(), ptr.width(), 3
    )
    want = np.array([colour.red(), colour.green(), colour.blue()])
    return int(np.all(np.abs(a.astype(int) - want) <= tol, axis=2).sum())


def _panel(qtbot: QtBot, table: cal.FarTable) -> CalibrationPanel:
    panel = CalibrationPanel()
    qtbot.addWidget(panel)
    panel.resize(700, 420)
    panel.set_data(table, 5, GENUINE, "balanced")
    panel.show()
    qtbot.waitExposed(panel)
    return panel


def test_sidecar_histograms_parse(far_json: dict[str, Any]) -> None:
    table = cal.FarTable.from_json(far_json)
    imp, gen = table.impostor_histogram, table.genuine_histogram
    assert imp is not None and gen is not None
    assert imp.start == 0.0 and imp.step == pytest.approx(0.01) and len(imp.counts) == 150
    assert imp.pairs >= sum(imp.counts) > 0
    dens = imp.density()
    assert float((dens * imp.step).sum()) == pytest.approx(1.0)
    # other people are far apart, the same person close: the curves sit apart
    assert gen.quantile(0.5) < 0.5 < imp.quantile(0.5)
    assert cal.FarTable.from_json(table.to_json()) == table


def test_plot_draws_other_people_you_and_the_threshold(
    qtbot: QtBot, far_json: dict[str, Any]
) -> None:
    panel = _panel(qtbot, cal.FarTable.from_json(far_json))
    plot = panel.plot
    ch = panel.choice
    assert ch is not None
    assert plot.impostor is not None and plot.note == ""
    assert plot.threshold == pytest.approx(ch.threshold)
    assert plot.genuine.tolist() == GENUINE.tolist()
    words = [t for _, t in plot.legend_entries()]
    assert words == ["other people", "you (5 measurements)", "threshold: accepted left of it"]
    assert plot.x_max() >= plot.impostor.quantile(0.995)
    img = plot.grab().toImage()
    assert _near(img, DistancePlot.IMPOSTOR_COLOUR) > 200  # the curve's outline and fill
    assert _near(img, DistancePlot.GENUINE_COLOUR) > 50
    assert _near(img, DistancePlot.THRESHOLD_COLOUR) > 50
    # a stricter level moves the line left
    panel.radios["secure"].click()
    assert plot.threshold is not None and plot.threshold < ch.threshold
    assert "1 in 100,000" in panel.radios["secure"].text()
    # never a bare "0 %" from a handful of samples: the count and the upper bound
    assert "recognised you in all 5 samples (may still miss up to 45%)" in (
        panel.radios["secure"].text()
    )


def test_without_an_impostor_histogram_the_plot_says_so(
    qtbot: QtBot, far_json: dict[str, Any]
) -> None:
    old = {k: v for k, v in far_json.items() if not k.endswith("_histogram")}
    table = cal.FarTable.from_json(old)
    assert table.impostor_histogram is None and table.genuine_histogram is None
    panel = _panel(qtbot, table)
    plot = panel.plot
    assert plot.impostor is None
    assert "only yours are shown" in plot.note
    assert plot.legend_entries()[0][1].startswith("you (")
    img = plot.grab().toImage()
    assert _near(img, DistancePlot.IMPOSTOR_COLOUR, tol=20) == 0
    assert _near(img, DistancePlot.GENUINE_COLOUR) > 50
    # the FAR table itself still works: the levels and their rates are shown
    assert panel.choice is not None and "1 in 10,000" in panel.radios["balanced"].text()


@pytest.mark.parametrize(
    "bad",
    [
        {"start": 0.0, "step": 0.01},
        {"start": 0.0, "step": 0.0, "counts": [1, 2]},
        {"start": 0.0, "step": 0.01, "counts": []},
        {"start": 0.0, "step": 0.01, "counts": [1, -2]},
    ],
)
def test_malformed_histograms_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(InputError, match="malformed histogram"):
        cal.Histogram.from_json(bad)
