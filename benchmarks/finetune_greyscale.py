"""Fine-tune the converted dlib encoder on greyscale (IR-proxy) LFW chips, and compare with a
small network trained from scratch on the same data for the same budget.

One command (CPU, ~15-20 minutes on 2 cores with the defaults)::

    python benchmarks/finetune_greyscale.py

Steps:

1. BEFORE: LFW View 1 accuracy of the converted dlib encoder on pairsDevTest, threshold fitted
   on pairsDevTrain (:func:`faceunlock.evaluation.lfw.evaluate`), on colour chips and on
   greyscale chips (luminance replicated to 3 channels: the IR proxy). Embeddings average the
   chip and its mirror, like the runtime.
2. Fine-tune with the batch-hard triplet loss (:class:`faceunlock.training.trainer.Trainer`)
   on greyscale chips of the peopleDevTrain identities with >= 2 images, P x K batches, the
   stem and the first ``--freeze-blocks`` residual blocks frozen.
3. AFTER: greyscale and colour accuracy again (a colour regression shows here).
4. :class:`~faceunlock.training.backbones.MobileFaceNetLite` from scratch, same data, steps,
   batch and loss; its greyscale and colour accuracy.
5. A table on stdout and every number in ``benchmarks/results/finetune_greyscale.json``.

Chips come from the trainer's own chip cache (:func:`faceunlock.training.data.load_chips`,
made once by the runtime pipeline; ``--cache-dir``). ``--prebuilt-chips`` may name an ``.npz``
with ``rels`` and ``chips`` holding aligned chips of the pairs images (a time saver; images it
lacks go through the cache). The peopleDevTrain identities are disjoint from pairsDevTest's.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from faceunlock.evaluation import lfw  # noqa: E402
from faceunlock.training.augment import AugmentConfig  # noqa: E402
from faceunlock.training.backbones import MobileFaceNetLite  # noqa: E402
from faceunlock.training.data import ChipDataset, LfwPeopleDataset, load_chips  # noqa: E402
from faceunlock.training.trainer import TrainConfig, Trainer, embed_chips  # noqa: E402

LUMA = np.asarray([0.299, 0.587, 0.114], np.float32)


def to_grey(chips: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 3) RGB -> uint8 (N, H, W, 3), the luminance in all three channels."""
    out = np.empty_like(chips)
    for i in range(0, len(chips), 512):
        g = np.rint(chips[i : i + 512].astype(np.float32) @ LUMA).clip(0, 255).astype(np.uint8)
        out[i : i + 512] = g[..., None]
    return out


def _progress(tag: str):
    def show(done: int, total: int) -> None:
        if done == total or done % 500 == 0:
            print(f"{tag} chips: {done}/{total}", file=sys.stderr, flush=True)
    return show


def eval_chips(lfw_root: Path, cache_dir: Path, prebuilt: Path | None,
               rels: list[str]) -> np.ndarray:
    """Chips of ``rels`` (uint8 (N, 150, 150, 3)), from ``prebuilt`` where it has them."""
    chips = np.zeros((len(rels), 150, 150, 3), np.uint8)
    have = np.zeros(len(rels), bool)
    if prebuilt is not None and prebuilt.is_file():
        with np.load(prebuilt, allow_pickle=False) as z:
            index = {str(r): i for i, r in enumerate(z["rels"])}
            rows = [index.get(r, -1) for r in rels]
            have = np.asarray([r >= 0 for r in rows])
            if have.any():
                chips[have] = z["chips"][np.asarray([r for r in rows if r >= 0])]
        print(f"eval chips: {int(have.sum())}/{len(rels)} from {prebuilt}", file=sys.stderr)
    missing = [r for r, h in zip(rels, have, strict=True) if not h]
    if missing:
        data = load_chips(lfw_root / "images", missing, cache_dir / "lfw-dev-pairs.npz",
                          progress=_progress("eval"))
        if not data["ok"].all():
            raise SystemExit("some pair images could not be read")
        chips[~have] = data["chips"]
    return chips


def prebuilt_train_set(prebuilt: Path, lfw_root: Path, min_images: int) -> ChipDataset:
    """The peopleDevTrain images that ``prebuilt`` holds, as a :class:`ChipDataset` (a time
    saver: no chips to make; identities with fewer than ``min_images`` of them dropped)."""
    from faceunlock.training.data import read_people

    wanted = {lfw.image_relpath(n, i): n for n, c in read_people(lfw_root / "peopleDevTrain.txt")
              for i in range(1, c + 1)}
    with np.load(prebuilt, allow_pickle=False) as z:
        rels = [str(r) for r in z["rels"]]
        rows = [i for i, r in enumerate(rels) if r in wanted]
        counts: dict[str, int] = {}
        for i in rows:
            counts[wanted[rels[i]]] = counts.get(wanted[rels[i]], 0) + 1
        rows = [i for i in rows if counts[wanted[rels[i]]] >= min_images]
        chips = z["chips"][np.asarray(rows, np.int64)]
    return ChipDataset.from_arrays(chips, [wanted[rels[i]] for i in rows],
                                   [rels[i] for i in rows], lfw_root / "images")


class PairEval:
    """View 1: pairsDevTest accuracy with the threshold fitted on pairsDevTrain."""

    def __init__(self, lfw_root: Path, cache_dir: Path, prebuilt: Path | None,
                 flip: bool) -> None:
        self.test = lfw.read_pairs(lfw_root / "pairsDevTest.txt")
        self.fit = lfw.read_pairs(lfw_root / "pairsDevTrain.txt")
        self.rels = list(dict.fromkeys(self.test.images() + self.fit.images()))
        self.colour = eval_chips(lfw_root, cache_dir, prebuilt, self.rels)
        self.grey = to_grey(self.colour)
        self.flip = flip

    def __call__(self, model: torch.nn.Module, grey: bool) -> dict[str, Any]:
        t0 = time.perf_counter()
        emb = embed_chips(model, self.grey if grey else self.colour, torch.device("cpu"),
                          batch_size=64, flip_average=self.flip)
        table = dict(zip(self.rels, emb, strict=True))
        ev = lfw.evaluate(self.test, lfw.pair_distances(self.test, table), self.fit,
                          lfw.pair_distances(self.fit, table))
        ev["seconds"] = time.perf_counter() - t0
        return ev


def train(model: torch.nn.Module, dataset: ChipDataset, args: argparse.Namespace,
          freeze_blocks: int, lr: float, margin: float, out_dir: Path,
          tag: str) -> dict[str, Any]:
    cfg = TrainConfig()
    cfg.model.freeze_blocks = freeze_blocks
    cfg.loss.kind, cfg.loss.miner, cfg.loss.margin = "triplet", "batch_hard", margin
    cfg.sampler.p, cfg.sampler.k, cfg.sampler.batches_per_epoch = args.p, args.k, args.steps
    cfg.optim.lr, cfg.optim.epochs = lr, 1
    # chips are already grey: flips and brightness/contrast jitter only (saturation is a no-op
    # on grey chips; the IR-like stretch + blur is applied to a fraction of them)
    cfg.augment = AugmentConfig(flip_p=0.5, jitter_p=0.8, ir_p=args.ir_p)
    cfg.eval.pairs = ""
    cfg.run.out_dir, cfg.run.seed, cfg.run.device = str(out_dir), args.seed, "cpu"
    cfg.run.threads, cfg.run.log_every = args.threads, max(1, args.steps // 10)
    trainer = Trainer(cfg, dataset=dataset, model=model,
                      log=lambda s: print(f"[{tag}] {s}", file=sys.stderr, flush=True))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    t0 = time.perf_counter()
    rows = trainer.fit()
    return {
        "steps": args.steps, "p": args.p, "k": args.k, "batch": args.p * args.k,
        "lr": lr, "margin": margin, "freeze_blocks": freeze_blocks,
        "trainable_params": int(trainable),
        "total_params": int(sum(p.numel() for p in model.parameters())),
        "train_seconds": time.perf_counter() - t0,
        "mean_loss": rows[-1]["loss"], "active_fraction": rows[-1]["active_fraction"],
    }


def _acc(ev: dict[str, Any]) -> str:
    return f"{ev['accuracy']:.4f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lfw", type=Path, default=ROOT.parent / "shared/datasets/lfw",
                    help="LFW root (peopleDevTrain.txt, pairsDev*.txt, images/)")
    ap.add_argument("--cache-dir", type=Path,
                    default=Path(tempfile.gettempdir()) / "faceunlock-chips",
                    help="chip caches (made on first use by the runtime pipeline)")
    ap.add_argument("--prebuilt-chips", type=Path, default=Path("/tmp/dev_chips.npz"),
                    help="optional npz (rels, chips) of aligned pair-image chips")
    ap.add_argument("--train-from-prebuilt", action="store_true",
                    help="train only on the peopleDevTrain images in --prebuilt-chips (no chip "
                         "extraction; these are pairsDevTrain images, the threshold-fit set)")
    ap.add_argument("--steps", type=int, default=60, help="optimisation steps per model")
    ap.add_argument("--p", type=int, default=16, help="identities per batch")
    ap.add_argument("--k", type=int, default=4, help="images per identity")
    ap.add_argument("--freeze-blocks", type=int, default=12,
                    help="freeze the stem and the first N of the 14 residual blocks")
    ap.add_argument("--lr", type=float, default=1e-4, help="fine-tuning learning rate")
    ap.add_argument("--margin", type=float, default=0.2, help="triplet margin (fine-tune)")
    ap.add_argument("--small-lr", type=float, default=2e-3, help="from-scratch learning rate")
    ap.add_argument("--small-margin", type=float, default=0.2,
                    help="triplet margin (from scratch, L2-normalised embeddings)")
    ap.add_argument("--ir-p", type=float, default=0.2, help="IR-like augmentation probability")
    ap.add_argument("--no-flip-eval", action="store_true",
                    help="evaluate without mirror averaging (faster)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-small", action="store_true", help="skip the from-scratch model")
    ap.add_argument("--out", type=Path,
                    default=ROOT / "benchmarks/results/finetune_greyscale.json")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    t_start = time.perf_counter()
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    prebuilt = args.prebuilt_chips if args.prebuilt_chips.is_file() else None

    from faceunlock.paths import models_dir
    from faceunlock.training.dlib.resnet import build_module

    evaluator = PairEval(args.lfw, args.cache_dir, prebuilt, flip=not args.no_flip_eval)
    if args.train_from_prebuilt and prebuilt is not None:
        dataset = prebuilt_train_set(prebuilt, args.lfw, min_images=2)
    else:
        dataset = LfwPeopleDataset(args.lfw / "peopleDevTrain.txt", args.lfw / "images",
                                   args.cache_dir / "devtrain-people.npz", min_images=2,
                                   progress=_progress("train"))
    dataset.chips = to_grey(dataset.chips)
    test_people = {a.split("/")[0] for pair in evaluator.test.pairs for a in pair}
    overlap = sorted(test_people & set(dataset.classes))
    print(f"train: {len(dataset)} grey chips, {dataset.num_classes} identities; "
          f"DevTest identities also in training: {len(overlap)}", file=sys.stderr)

    results: dict[str, Any] = {}
    model = build_module(models_dir() / "encoder.onnx")
    print("evaluating the converted encoder (before)", file=sys.stderr, flush=True)
    results["dlib_before"] = {"colour": evaluator(model, grey=False),
                              "grey": evaluator(model, grey=True)}
    with tempfile.TemporaryDirectory() as tmp:
        results["dlib_finetune"] = train(model, dataset, args, args.freeze_blocks, args.lr,
                                         args.margin, Path(tmp) / "dlib", "dlib")
        results["dlib_after"] = {"grey": evaluator(model, grey=True),
                                 "colour": evaluator(model, grey=False)}
        if not args.skip_small:
            torch.manual_seed(args.seed)
            small = MobileFaceNetLite()
            results["small_train"] = train(small, dataset, args, 0, args.small_lr,
                                           args.small_margin, Path(tmp) / "small", "small")
            results["small_scratch"] = {"grey": evaluator(small, grey=True),
                                        "colour": evaluator(small, grey=False)}

    total = time.perf_counter() - t_start
    report = {
        "command": "python benchmarks/finetune_greyscale.py " + " ".join(
            argv if argv is not None else sys.argv[1:]),
        "protocol": "LFW View 1: pairsDevTest accuracy, threshold fitted on pairsDevTrain; "
                    + ("mirror-averaged" if not args.no_flip_eval else "single-chip")
                    + " embeddings; grey = luminance (0.299, 0.587, 0.114) in 3 channels",
        "train_data": {"people_file": "peopleDevTrain.txt", "min_images": 2,
                       "images": len(dataset),
                       "source": ("prebuilt pairsDevTrain images" if args.train_from_prebuilt
                                  and prebuilt is not None else "all peopleDevTrain images"),
                       "identities": dataset.num_classes,
                       "devtest_identity_overlap": len(overlap), "chips": "greyscale"},
        "budget": {"steps": args.steps, "p": args.p, "k": args.k, "batch": args.p * args.k,
                   "threads": args.threads, "total_minutes": total / 60.0},
        "seeds": {"seed": args.seed, "torch": args.seed, "sampler": args.seed,
                  "augment": args.seed},
        "machine": {"platform": platform.platform(), "torch": torch.__version__},
        "prebuilt_chips": str(prebuilt) if prebuilt else None,
        **results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")

    print(f"\nLFW View 1 (pairsDevTest, {len(evaluator.test.pairs)} pairs, threshold fitted on "
          f"pairsDevTrain); train: {len(dataset)} grey chips / {dataset.num_classes} ids, "
          f"{args.steps} steps x {args.p}x{args.k}, seed {args.seed}, "
          f"{total / 60:.1f} min total")
    print(f"{'model':<34}{'grey acc':>10}{'colour acc':>12}{'grey AUC':>10}{'train s':>9}")
    lines = [("dlib converted (before)", results["dlib_before"], None),
             (f"dlib fine-tuned grey (freeze {args.freeze_blocks})", results["dlib_after"],
              results["dlib_finetune"])]
    if "small_scratch" in results:
        lines.append(("MobileFaceNetLite from scratch", results["small_scratch"],
                      results["small_train"]))
    for name, ev, tr in lines:
        secs = f"{tr['train_seconds']:.0f}" if tr else "-"
        print(f"{name:<34}{_acc(ev['grey']):>10}{_acc(ev['colour']):>12}"
              f"{ev['grey']['roc_auc']:>10.4f}{secs:>9}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
