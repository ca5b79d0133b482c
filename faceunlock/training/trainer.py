"""Fine-tune the encoder (dlib's ResNet, see :mod:`faceunlock.training.dlib_resnet`) with a
metric-learning loss, from a TOML config.

Usage::

    python -m faceunlock.training.trainer CONFIG.toml [--resume] [--epochs N]

Config sections: ``[data]``, ``[model]``, ``[loss]``, ``[sampler]``, ``[optim]``,
``[augment]``, ``[eval]``, ``[run]``. Every key is optional and declared once, with
:func:`faceunlock.config.key`, in the section dataclasses below (type, default, allowed values,
help); ``python -m faceunlock.training.trainer --help`` lists them all, and a bad key or value
gets the same messages as the app's config.

Determinism: torch is seeded from ``run.seed``; batches come from
:class:`~faceunlock.training.data.PKSampler` seeded with (seed, epoch) and augmentations from
a generator reseeded per epoch, so a run resumed from a checkpoint continues exactly as an
uninterrupted one would (on the CPU; GPUs add their own non-determinism, reduced with
``torch.use_deterministic_algorithms``).

Outputs in ``out_dir``: ``last.pt`` (model, loss and optimiser state, epoch), ``best.pt``
(the epoch with the best eval accuracy, or the lowest mean loss without eval),
``metrics.jsonl`` (one line per epoch) and a copy of the config.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from faceunlock.config import Schema, Section, key
from faceunlock.errors import ConfigError, InputError
from faceunlock.training.augment import AugmentConfig, Augmenter
from faceunlock.training.data import ChipDataset, FolderDataset, LfwPeopleDataset, PKSampler
from faceunlock.training.distances import (
    CosineSimilarity,
    Distance,
    EuclideanDistance,
    SquaredEuclideanDistance,
)
from faceunlock.training.losses import ArcFaceLoss, ContrastiveLoss, TripletMarginLoss
from faceunlock.training.miners import BatchAllMiner, BatchHardMiner, Miner, SemiHardMiner

# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


@dataclass
class DataConfig(Section):
    SECTION = "data"
    kind: str = key("lfw_people", "lfw_people (a people file and its images) or folder (one "
                    "folder of images per identity)", choices=("lfw_people", "folder"))
    people_file: str = key("", "lfw_people: the LFW people file (name and image count per line)")
    image_root: str = key("", "lfw_people: the folder of the images (NAME/NAME_0001.jpg)")
    root: str = key("", "folder: one subfolder per identity")
    cache: str = key("", "an .npz file keeping the aligned chips between runs (empty: none)")
    min_images: int = key(2, "identities with fewer images are left out", lo=1)


@dataclass
class TrainModelConfig(Section):
    SECTION = "model"
    dat: str = key("", "the starting weights: dlib .dat or an encoder .onnx (empty: the "
                   "runtime's models/encoder.onnx)")
    freeze_blocks: int = key(0, "freeze the stem and the first N residual blocks (0: train "
                             "everything)", lo=0)


@dataclass
class LossConfig(Section):
    SECTION = "loss"
    kind: str = key("triplet", "the metric-learning loss",
                    choices=("triplet", "contrastive", "arcface"))
    margin: float = key(0.2, "the loss margin", lo=0.0)
    distance: str = key("euclidean", "distance of the triplet and contrastive losses",
                        choices=("euclidean", "squared_euclidean", "cosine"))
    miner: str = key("", "triplet mining (empty: batch_hard for the triplet loss, none "
                     "otherwise)", choices=("", "batch_hard", "semi_hard", "batch_all", "none"))
    scale: float = key(64.0, "arcface: the logit scale", lo=0.0)


@dataclass
class SamplerConfig(Section):
    SECTION = "sampler"
    p: int = key(16, "identities per batch", lo=1)
    k: int = key(4, "images per identity in a batch", lo=1)
    batches_per_epoch: int = key(0, "batches per epoch (0: identities // p)", lo=0)


@dataclass
class OptimConfig(Section):
    SECTION = "optim"
    kind: str = key("adam", "optimiser: adam (AdamW) or sgd", choices=("adam", "sgd"))
    lr: float = key(1e-5, "learning rate", lo=0.0)
    weight_decay: float = key(0.0, "weight decay", lo=0.0)
    momentum: float = key(0.9, "sgd: momentum", lo=0.0)
    epochs: int = key(10, "epochs in all (a resumed run continues to this)", lo=0)
    grad_clip: float = key(0.0, "clip the gradient norm to this (0: no clipping)", lo=0.0)
    templates_lr: float = key(0.0, "arcface: learning rate of the class templates (0: lr)",
                              lo=0.0)


@dataclass
class EvalConfig(Section):
    SECTION = "eval"
    pairs: str = key("", "an LFW pairs file evaluated after every epoch (empty: no eval)")
    image_root: str = key("", "the folder of the pair images")
    cache: str = key("", "an .npz file keeping the pair chips between runs (empty: none)")
    fit_pairs: str = key("", "a pairs file the threshold is fitted on (empty: the test pairs)")
    flip_average: bool = key(True, "average each embedding with its mirror image's")
    normalize: bool = key(False, "scale embeddings to unit length before the distances")
    batch_size: int = key(64, "chips per forward pass", lo=1)
    baseline: bool = key(True, "evaluate once before the first epoch")


@dataclass
class RunConfig(Section):
    SECTION = "run"
    out_dir: str = key("runs/train", "checkpoints, metrics.jsonl and config.json go here",
                       nonempty=True)
    seed: int = key(0, "seed of torch, the batches and the augmentations", lo=0)
    device: str = key("auto", "cpu, cuda (or cuda:N), or auto (cuda when available)",
                      nonempty=True)
    threads: int = key(0, "torch CPU threads (0: torch's default)", lo=0)
    log_every: int = key(10, "a log line every this many batches", lo=0)


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: TrainModelConfig = field(default_factory=TrainModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: RunConfig = field(default_factory=RunConfig)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TrainConfig:
        """The config of parsed TOML; missing keys take their defaults. InputError for an
        unknown section or key, a wrong type or a value out of range (the messages of
        :mod:`faceunlock.config`)."""
        try:
            return cls(**TRAIN_SCHEMA.sections_from_dict(raw))  # type: ignore[arg-type]
        except ConfigError as e:
            raise InputError(f"config: {e}") from e

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


TRAIN_SCHEMA = Schema(TrainConfig)
#: the keys naming a file or folder: relative ones are relative to the config file
PATH_KEYS = ("data.people_file", "data.image_root", "data.root", "data.cache", "model.dat",
             "eval.pairs", "eval.image_root", "eval.cache", "eval.fit_pairs", "run.out_dir")


def load_config(path: str | Path) -> TrainConfig:
    """Read a training config. InputError naming the file when it cannot be read, is not
    TOML, or has an unknown key or a bad value."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text())
    except OSError as e:
        raise InputError(f"config {p}: cannot be read ({e.strerror})") from e
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"config {p}: {e}") from e
    try:
        cfg = TrainConfig(**TRAIN_SCHEMA.sections_from_dict(raw))  # type: ignore[arg-type]
    except ConfigError as e:
        raise InputError(f"config {p}: {e}") from e
    # relative paths in the config are relative to the config file
    base = p.resolve().parent
    for k in PATH_KEYS:
        section, name = k.split(".")
        target = getattr(cfg, section)
        value = getattr(target, name)
        if value and not Path(value).is_absolute():
            setattr(target, name, str(base / value))
    return cfg


def describe_keys() -> str:
    """Every key of the training config, for ``--help``."""
    lines = ["config keys (TYPE, default; allowed values):"]
    for d in TRAIN_SCHEMA.describe():
        lines.append(f"  {d['key']:<24} {d['type']}, default {d['default']}; {d['allowed']}")
        lines.append(f"  {'':<24} {d['help']}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------

_DISTANCES: dict[str, Callable[[], Distance]] = {
    "euclidean": EuclideanDistance,
    "squared_euclidean": SquaredEuclideanDistance,
    "cosine": CosineSimilarity,
}


def make_distance(name: str) -> Distance:
    try:
        return _DISTANCES[name]()
    except KeyError:
        raise InputError(f"loss.distance: unknown {name!r} ({', '.join(_DISTANCES)})") from None


def make_miner(cfg: LossConfig, distance: Distance | None) -> Miner | None:
    name = cfg.miner or ("batch_hard" if cfg.kind == "triplet" else "none")
    if name == "none":
        return None
    if cfg.kind != "triplet" or distance is None:
        raise InputError(f"loss.miner {name!r} only applies to the triplet loss")
    if name == "batch_hard":
        return BatchHardMiner(distance=distance)
    if name == "semi_hard":
        return SemiHardMiner(cfg.margin, distance=distance)
    if name == "batch_all":
        return BatchAllMiner(cfg.margin, positive_only=True, distance=distance)
    raise InputError(f"loss.miner: unknown {name!r}")


def make_loss(cfg: LossConfig, num_classes: int, embedding_size: int = 128) -> nn.Module:
    if cfg.kind == "triplet":
        return TripletMarginLoss(cfg.margin, distance=make_distance(cfg.distance))
    if cfg.kind == "contrastive":
        return ContrastiveLoss(cfg.margin, distance=make_distance(cfg.distance))
    if cfg.kind == "arcface":
        return ArcFaceLoss(num_classes, embedding_size, margin=cfg.margin, scale=cfg.scale)
    raise InputError(f"loss.kind: unknown {cfg.kind!r}")


def freeze(model: nn.Module, blocks: int) -> None:
    """Freeze the stem and the first ``blocks`` residual blocks of a DlibFaceResNet."""
    if blocks <= 0:
        return
    for name, p in model.named_parameters():
        parts = name.split(".")
        if parts[0] == "stem" or (parts[0] == "blocks" and int(parts[1]) < blocks):
            p.requires_grad_(False)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@torch.no_grad()
def embed_chips(model: nn.Module, chips: np.ndarray, device: torch.device,
                batch_size: int = 64, flip_average: bool = True) -> np.ndarray:
    """uint8 (N, 150, 150, 3) -> float32 (N, 128) with the torch model, averaging with the
    mirror image like the runtime pipeline does when ``flip_average``."""
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(chips), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(chips[i : i + batch_size])).to(device)
        e = model(x)
        if flip_average:
            e = (e + model(x.flip(2))) / 2.0
        out.append(e.float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 128), np.float32)


class PairEvaluator:
    """Per-epoch verification on an LFW pairs file, through :mod:`faceunlock.evaluation`."""

    def __init__(self, cfg: EvalConfig, pipeline: Any = None) -> None:
        from faceunlock.evaluation.lfw import read_pairs
        from faceunlock.training.data import load_chips

        self.cfg = cfg
        self.test = read_pairs(cfg.pairs)
        self.fit = read_pairs(cfg.fit_pairs) if cfg.fit_pairs else None
        images = self.test.images() + (self.fit.images() if self.fit else [])
        data = load_chips(cfg.image_root, list(dict.fromkeys(images)), cfg.cache or None,
                          pipeline)
        if not data["ok"].all():
            raise InputError("eval: some pair images could not be read")
        self.paths = [str(p) for p in data["paths"]]
        self.chips = data["chips"]

    def __call__(self, model: nn.Module, device: torch.device) -> dict[str, Any]:
        from faceunlock.evaluation import lfw

        emb = embed_chips(model, self.chips, device, self.cfg.batch_size, self.cfg.flip_average)
        if self.cfg.normalize:
            emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        table = dict(zip(self.paths, emb, strict=True))
        d = lfw.pair_distances(self.test, table)
        fit_d = lfw.pair_distances(self.fit, table) if self.fit else None
        return lfw.evaluate(self.test, d, self.fit, fit_d, default_threshold=0.6)


def build_dataset(cfg: DataConfig, pipeline: Any = None) -> ChipDataset:
    def progress(done: int, total: int) -> None:
        if done == total or done % 500 == 0:
            print(f"chips: {done}/{total}", file=sys.stderr, flush=True)

    cache = cfg.cache or None
    if cfg.kind == "lfw_people":
        return LfwPeopleDataset(cfg.people_file, cfg.image_root, cache, pipeline,
                                cfg.min_images, progress)
    if cfg.kind == "folder":
        return FolderDataset(cfg.root, cache, pipeline, cfg.min_images, progress)
    raise InputError(f"data.kind: unknown {cfg.kind!r}")


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


# ---------------------------------------------------------------------------------------------
# Trainer
# ---------------------------------------------------------------------------------------------


class Trainer:
    """Runs :class:`TrainConfig`. ``dataset``, ``model`` and ``pipeline`` may be given
    (tests, notebooks); otherwise they are built from the config."""

    def __init__(self, cfg: TrainConfig, dataset: ChipDataset | None = None,
                 model: nn.Module | None = None, pipeline: Any = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.cfg = cfg
        self.log = log or (lambda s: print(s, flush=True))
        run = cfg.run
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.manual_seed(run.seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        if run.threads:
            torch.set_num_threads(run.threads)
        self.device = resolve_device(run.device)
        self.out_dir = Path(run.out_dir)
        self.dataset = dataset if dataset is not None else build_dataset(cfg.data, pipeline)
        if model is None:
            from faceunlock.paths import models_dir
            from faceunlock.training.dlib_resnet import build_module

            model = build_module(cfg.model.dat or models_dir() / "encoder.onnx")
        self.model = model.to(self.device).train()
        freeze(self.model, cfg.model.freeze_blocks)
        self.loss_fn = make_loss(cfg.loss, self.dataset.num_classes).to(self.device)
        self.distance = getattr(self.loss_fn, "distance", None)
        self.miner = make_miner(cfg.loss, self.distance)
        self.sampler = PKSampler(self.dataset.labels, cfg.sampler.p, cfg.sampler.k,
                                 seed=run.seed, batches_per_epoch=cfg.sampler.batches_per_epoch
                                 or None)
        self.augmenter = Augmenter(run.seed, cfg.augment)
        self.optimizer = self._make_optimizer()
        self.evaluator = PairEvaluator(cfg.eval, pipeline) if cfg.eval.pairs else None
        self.start_epoch = 0
        self.best: float | None = None

    def _make_optimizer(self) -> torch.optim.Optimizer:
        o = self.cfg.optim
        groups: list[dict[str, Any]] = [
            {"params": [p for p in self.model.parameters() if p.requires_grad]}]
        extra = [p for p in self.loss_fn.parameters() if p.requires_grad]
        if extra:
            groups.append({"params": extra, "lr": o.templates_lr or o.lr})
        if o.kind == "adam":
            return torch.optim.AdamW(groups, lr=o.lr, weight_decay=o.weight_decay)
        if o.kind == "sgd":
            return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum,
                                   weight_decay=o.weight_decay)
        raise InputError(f"optim.kind: unknown {o.kind!r}")

    # -- checkpoints --------------------------------------------------------------------------

    def checkpoint(self, epoch: int) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "model": self.model.state_dict(),
            "loss": self.loss_fn.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "best": self.best,
            "config": self.cfg.to_dict(),
            "classes": list(self.dataset.classes),
        }

    def save(self, epoch: int, name: str) -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / name
        tmp = path.with_suffix(".tmp")
        torch.save(self.checkpoint(epoch), tmp)
        os.replace(tmp, path)
        return path

    def resume(self, path: str | Path | None = None) -> bool:
        """Load ``path`` (default ``out_dir/last.pt``); False when there is none."""
        p = Path(path) if path is not None else self.out_dir / "last.pt"
        if not p.is_file():
            return False
        ckpt = torch.load(p, map_location=self.device, weights_only=False)
        self.model.load_state_dict(ckpt["model"])
        self.loss_fn.load_state_dict(ckpt["loss"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.best = ckpt.get("best")
        self.start_epoch = int(ckpt["epoch"]) + 1
        self.log(f"resumed from {p} at epoch {self.start_epoch}")
        return True

    # -- training -----------------------------------------------------------------------------

    def step(self, indices: Sequence[int]) -> tuple[float, float, int]:
        """One optimisation step; returns (loss, active fraction, number of triplets/pairs)."""
        chips, labels = self.dataset.batch(indices)
        chips = self.augmenter(chips).to(self.device)
        labels = labels.to(self.device)
        emb = self.model(chips)
        if self.miner is not None:
            loss = self.loss_fn(emb, labels, self.miner(emb, labels))
        else:
            loss = self.loss_fn(emb, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.optim.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
        self.optimizer.step()
        active = float(getattr(self.loss_fn, "active_fraction",
                               getattr(self.loss_fn, "last_active_fraction", float("nan"))))
        count = int(getattr(self.loss_fn, "last_num_triplets",
                            getattr(self.loss_fn, "last_num_pairs", len(indices))))
        return float(loss.detach()), active, count

    def evaluate(self) -> dict[str, Any] | None:
        return self.evaluator(self.model, self.device) if self.evaluator else None

    def _write_metrics(self, row: dict[str, Any]) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")

    def fit(self, epochs: int | None = None) -> list[dict[str, Any]]:
        """Train up to ``epochs`` (default ``optim.epochs``) epochs in total; returns the
        per-epoch metrics rows of this call."""
        total = self.cfg.optim.epochs if epochs is None else epochs
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / "config.json").write_text(
            json.dumps(self.cfg.to_dict(), indent=1, sort_keys=True) + "\n")
        rows = []
        if self.start_epoch == 0 and self.evaluator and self.cfg.eval.baseline:
            ev = self.evaluate()
            self._write_metrics({"epoch": -1, "eval": ev})
            self.log(f"baseline: {_eval_line(ev)}")
        log_every = max(1, self.cfg.run.log_every)
        for epoch in range(self.start_epoch, total):
            self.sampler.set_epoch(epoch)
            self.augmenter.reseed(_epoch_seed(self.cfg.run.seed, epoch))
            t0 = time.perf_counter()
            losses, actives = [], []
            n_batches = len(self.sampler)
            for b, idx in enumerate(self.sampler):
                loss, active, count = self.step(idx)
                losses.append(loss)
                actives.append(active)
                if (b + 1) % log_every == 0 or b + 1 == n_batches:
                    act = _mean_finite(actives[-log_every:])
                    self.log(f"epoch {epoch + 1}/{total} batch {b + 1}/{n_batches} "
                             f"loss {np.mean(losses[-log_every:]):.4f} "
                             + (f"active {act:.3f} " if act is not None else "")
                             + f"n {count} ({time.perf_counter() - t0:.0f} s)")
            mean_loss = float(np.mean(losses)) if losses else float("nan")
            row: dict[str, Any] = {
                "epoch": epoch,
                "loss": mean_loss,
                "active_fraction": _mean_finite(actives),
                "seconds": time.perf_counter() - t0,
            }
            ev = self.evaluate()
            if ev is not None:
                row["eval"] = ev
                self.log(f"epoch {epoch + 1}: {_eval_line(ev)}")
                score = float(ev["accuracy"])
            else:
                score = -mean_loss
            if self.best is None or (math.isfinite(score) and score > self.best):
                self.best = score
                self.save(epoch, "best.pt")
            self.save(epoch, "last.pt")
            self._write_metrics(row)
            rows.append(row)
        return rows


def _mean_finite(values: Sequence[float]) -> float | None:
    ok = [v for v in values if math.isfinite(v)]
    return float(np.mean(ok)) if ok else None


def _eval_line(ev: dict[str, Any] | None) -> str:
    if not ev:
        return "no eval"
    return (f"accuracy {ev['accuracy']:.4f} (threshold {ev['threshold']:.3f}) "
            f"AUC {ev['roc_auc']:.4f} EER {ev['eer']:.4f}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Fine-tune the face encoder.",
                                 epilog=describe_keys(),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", type=Path, help="TOML config")
    ap.add_argument("--resume", action="store_true", help="continue from out_dir/last.pt")
    ap.add_argument("--epochs", type=int, default=None, help="override optim.epochs")
    args = ap.parse_args(argv)
    try:
        trainer = Trainer(load_config(args.config))
        if args.resume:
            trainer.resume()
        trainer.fit(args.epochs)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
