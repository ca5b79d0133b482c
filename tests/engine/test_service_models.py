"""What a user is told when a shipped model artefact is missing or damaged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faceunlock.app import service
from faceunlock.engine.pipeline import Pipeline, PipelineSettings
from faceunlock.errors import ModelError
from faceunlock.paths import models_dir


def _models_without_far_table(tmp_path: Path) -> Path:
    """The shipped models folder (linked), with both encoder sidecars lacking ``far_table``."""
    dst = tmp_path / "models"
    dst.mkdir()
    for p in models_dir().iterdir():
        if p.is_file():
            (dst / p.name).symlink_to(p)
    for name in ("encoder.onnx.json", "encoder-int8.onnx.json"):
        meta = json.loads((models_dir() / name).read_text())
        del meta["far_table"]
        (dst / name).unlink()
        (dst / name).write_text(json.dumps(meta))
    return dst


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_a_sidecar_without_far_table_says_to_reinstall(tmp_path: Path, precision: str) -> None:
    pipe = Pipeline(PipelineSettings(models=str(_models_without_far_table(tmp_path)),
                                     precision=precision))
    with pytest.raises(ModelError) as ei:
        service.far_table(pipe, "raw")
    msg = str(ei.value)
    assert str(pipe.encoder.path) in msg
    assert "reinstall FaceUnlock" in msg
    assert "missing or corrupt" in msg
    assert "benchmarks" not in msg and ".py" not in msg.replace(str(pipe.encoder.path), "")


def test_the_shipped_sidecars_have_their_far_table() -> None:
    for precision in ("fp32", "int8"):
        pipe = Pipeline(PipelineSettings(precision=precision))
        assert service.far_table(pipe, "raw").entries
