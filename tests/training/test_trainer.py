"""Smoke test of the trainer: a few steps on tiny synthetic chips with dlib's ResNet."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
frm = pytest.importorskip("face_recognition_models")

from faceunlock.errors import InputError  # noqa: E402
from faceunlock.training.data import FolderDataset  # noqa: E402
from faceunlock.training.trainer import TrainConfig, Trainer, load_config  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

PEOPLE = {"Ann_A": 3, "Bob_B": 2, "Cid_C": 2, "Dee_D": 3}


@pytest.fixture(autouse=True)
def _nondeterministic_after():
    """The trainer switches deterministic algorithms on; later tests get the default back."""
    yield
    torch.use_deterministic_algorithms(False)


@dataclass
class _Obs:
    chip: np.ndarray
    fallback: bool
    embedding: np.ndarray


class FakePipeline:
    def observe(self, image, select="all", fallback_center=False):
        chip = cv2.resize(image, (150, 150), interpolation=cv2.INTER_LINEAR)
        return [_Obs(chip, False, np.zeros(128, np.float32))]


@pytest.fixture(scope="module")
def image_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faces")
    rng = np.random.default_rng(0)
    for p, (name, count) in enumerate(PEOPLE.items()):
        base = rng.integers(0, 256, (8, 8, 3)).astype(np.float32)
        (root / name).mkdir()
        for i in range(1, count + 1):
            img = np.clip(base + rng.normal(0, 20, base.shape) + 10 * p, 0, 255).astype(np.uint8)
            img = cv2.resize(img, (60, 60), interpolation=cv2.INTER_CUBIC)
            cv2.imwrite(str(root / name / f"{name}_{i:04d}.jpg"), img[:, :, ::-1])
    return root


def _config(tmp: Path, image_root: Path, out: str, extra: str = "") -> TrainConfig:
    pairs = tmp / "pairs.txt"
    pairs.write_text("2\nAnn_A 1 2\nDee_D 1 3\nAnn_A 1 Bob_B 1\nCid_C 2 Dee_D 2\n")
    cfg_path = tmp / f"{out}.toml"
    cfg_path.write_text(f"""
[model]
freeze_blocks = 8
[loss]
kind = "triplet"
margin = 0.2
[sampler]
p = 2
k = 2
batches_per_epoch = 2
[optim]
lr = 1e-4
epochs = 2
[eval]
pairs = "pairs.txt"
image_root = "{image_root}"
cache = "eval_chips.npz"
[run]
out_dir = "{out}"
seed = 3
device = "cpu"
log_every = 1
{extra}
""")
    return load_config(cfg_path)


@pytest.fixture(scope="module")
def dataset(image_root) -> FolderDataset:
    return FolderDataset(image_root, pipeline=FakePipeline())


def test_train_eval_checkpoint_and_resume(tmp_path, image_root):
    ds = FolderDataset(image_root, pipeline=FakePipeline(),
                       cache=tmp_path / "train_chips.npz")
    cfg = _config(tmp_path, image_root, "straight")
    assert cfg.run.out_dir == str(tmp_path / "straight")
    lines: list[str] = []
    t = Trainer(cfg, dataset=ds, pipeline=FakePipeline(), log=lines.append)
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    rows = t.fit()
    assert [r["epoch"] for r in rows] == [0, 1]
    assert all(np.isfinite(r["loss"]) and 0.0 <= r["active_fraction"] <= 1.0 for r in rows)
    assert {"accuracy", "roc_auc", "eer", "threshold"} <= set(rows[0]["eval"])
    assert any("active" in ln and "loss" in ln for ln in lines)
    out = tmp_path / "straight"
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file()
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [-1, 0, 1]  # baseline, then each epoch
    after = t.model.state_dict()
    assert not torch.equal(before["fc.weight"], after["fc.weight"])
    assert torch.equal(before["stem.weight"], after["stem.weight"])  # frozen

    # one epoch, then resume for the second: same weights as the straight run
    cfg2 = _config(tmp_path, image_root, "resumed")
    Trainer(cfg2, dataset=ds, pipeline=FakePipeline(), log=lines.append).fit(1)
    t2 = Trainer(cfg2, dataset=ds, pipeline=FakePipeline(), log=lines.append)
    assert t2.resume()
    assert t2.start_epoch == 1
    t2.fit()
    for k, v in t2.model.state_dict().items():
        assert torch.equal(v, after[k]), k


@pytest.mark.parametrize(("kind", "miner", "distance"), [
    ("triplet", "semi_hard", "cosine"),
    ("triplet", "batch_all", "squared_euclidean"),
    ("contrastive", "", "euclidean"),
    ("arcface", "", "euclidean"),
])
def test_other_losses_run(tmp_path, image_root, dataset, kind, miner, distance):
    cfg = _config(tmp_path, image_root, "other")
    cfg.loss.kind, cfg.loss.miner, cfg.loss.distance = kind, miner, distance
    cfg.loss.margin = 0.5
    cfg.eval.pairs = ""
    cfg.optim.epochs = 1
    cfg.sampler.batches_per_epoch = 1
    rows = Trainer(cfg, dataset=dataset, log=lambda s: None).fit()
    assert np.isfinite(rows[0]["loss"])


def test_config_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[loss]\nmarginn = 1.0\n")
    with pytest.raises(InputError, match="marginn"):
        load_config(bad)
    bad.write_text("[sampler]\np = 2.5\n")
    with pytest.raises(InputError, match=r"sampler\.p: must be an integer, got 2\.5"):
        load_config(bad)
