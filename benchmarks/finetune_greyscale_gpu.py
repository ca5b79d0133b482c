"""Greyscale (IR-proxy) fine-tuning on all of LFW DevTrain, trained on a GPU, reported on CPU.

The CPU experiment (``benchmarks/finetune_greyscale.py``) can afford ~100 steps on a subset;
this one trains on every peopleDevTrain identity with >= 2 images (at most 20 images each),
in three steps:

    # 1. here: greyscale chips of DevTrain (runtime alignment) packed as JPEG (q90) to travel
    python benchmarks/finetune_greyscale_gpu.py pack --out .gpu/devtrain_grey.npz
    # 2. on a CUDA machine: train every variant, write the trained weights and a log
    python benchmarks/finetune_greyscale_gpu.py train --pack .gpu/devtrain_grey.npz --out DIR
    # 3. here: LFW View 1 (pairsDevTest, threshold fitted on pairsDevTrain) for each variant
    python benchmarks/finetune_greyscale_gpu.py report --runs DIR

Protocol. Every 8th DevTrain identity (sorted by name) is held out as a validation set; the
variant reported as "selected" is the one with the best validation ROC AUC on greyscale
chips (pairs among the held-out identities), chosen before DevTest is looked at. DevTest
numbers are given for every variant anyway. Training sees only greyscale chips (luminance
0.299/0.587/0.114 in three channels), with flips, brightness/contrast jitter and the
IR-like transform of :mod:`faceunlock.training.augment`. Loss: batch-hard triplet
(:class:`~faceunlock.training.miners.BatchHardMiner`), P x K = 32 x 4, Adam.

Only the trained parameters travel back (float32, files under 15 MB); the frozen ones are
rebuilt from ``models/encoder.onnx``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

JPEG_QUALITY = 90
MAX_PER_ID = 20
VAL_EVERY = 8
CHUNK_BYTES = 15_000_000

#: name, backbone, frozen blocks (of 14), learning rate, triplet margin, steps
VARIANTS: tuple[tuple[str, str, int, float, float, int], ...] = (
    ("dlib_freeze12", "dlib", 12, 1e-4, 0.2, 1200),
    ("dlib_freeze8", "dlib", 8, 3e-5, 0.2, 1200),
    ("dlib_all", "dlib", 0, 1e-5, 0.2, 1200),
    ("small_scratch", "small", 0, 2e-3, 0.2, 4000),
)


# -- 1. pack ---------------------------------------------------------------------------------


def cmd_pack(args: argparse.Namespace) -> int:
    import cv2

    from faceunlock.training.data import LfwPeopleDataset

    ds = LfwPeopleDataset(args.lfw / "peopleDevTrain.txt", args.lfw / "images", args.cache,
                          min_images=2)
    names = [ds.classes[i] for i in ds.labels]
    taken: dict[str, int] = {}
    rows = []
    for i, n in enumerate(names):
        if taken.get(n, 0) < MAX_PER_ID:
            taken[n] = taken.get(n, 0) + 1
            rows.append(i)
    ids = sorted(taken)
    val_ids = set(ids[::VAL_EVERY])
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from finetune_greyscale import to_grey  # the CPU experiment's luminance

    g = to_grey(ds.chips[np.asarray(rows)])[..., 0]
    blobs = [cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes()
             for x in g]
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, jpeg=np.frombuffer(b"".join(blobs), np.uint8), offsets=offsets,
             names=np.asarray([names[i] for i in rows]),
             paths=np.asarray([ds.paths[i] for i in rows]),
             val=np.asarray([names[i] in val_ids for i in rows]))
    print(f"{len(rows)} chips of {len(ids)} identities ({len(val_ids)} held out) -> {args.out} "
          f"({args.out.stat().st_size / 1e6:.1f} MB)")
    return 0


def load_pack(path: Path) -> dict[str, Any]:
    import cv2

    with np.load(path, allow_pickle=False) as z:
        jpeg, off = z["jpeg"], z["offsets"]
        g = np.stack([cv2.imdecode(jpeg[off[i] : off[i + 1]], cv2.IMREAD_GRAYSCALE)
                      for i in range(len(off) - 1)])
        return {"chips": np.repeat(g[..., None], 3, axis=3), "names": [str(n) for n in z["names"]],
                "paths": [str(p) for p in z["paths"]], "val": z["val"].astype(bool)}


# -- 2. train --------------------------------------------------------------------------------


def val_metrics(model: Any, chips: np.ndarray, names: list[str], device: Any) -> dict[str, float]:
    """ROC AUC and best accuracy over every pair of the held-out chips (mirror-averaged)."""
    from faceunlock.evaluation import metrics
    from faceunlock.training.trainer import embed_chips

    e = embed_chips(model, chips, device, batch_size=256, flip_average=True).astype(np.float64)
    lab = np.unique(names, return_inverse=True)[1]
    iu = np.triu_indices(len(e), 1)
    d = np.sqrt(np.maximum(((e[:, None] - e[None]) ** 2).sum(-1), 0))[iu]
    same = (lab[:, None] == lab[None])[iu]
    thr = metrics.best_threshold(d, same)
    return {"roc_auc": metrics.roc_auc(d, same), "eer": metrics.eer(d, same)[0],
            "genuine_pairs": int(same.sum()), "impostor_pairs": int((~same).sum()),
            "threshold": thr}


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from faceunlock.paths import models_dir
    from faceunlock.training.augment import AugmentConfig
    from faceunlock.training.backbones import MobileFaceNetLite
    from faceunlock.training.data import ChipDataset
    from faceunlock.training.dlib.resnet import build_module
    from faceunlock.training.trainer import TrainConfig, Trainer, resolve_device

    t_start = time.perf_counter()
    pack = load_pack(args.pack)
    val = pack["val"]
    tr = ~val
    train = ChipDataset.from_arrays(pack["chips"][tr], [n for n, v in zip(pack["names"], val,
                                    strict=True) if not v],
                                    [p for p, v in zip(pack["paths"], val, strict=True) if not v])
    val_chips = pack["chips"][val]
    val_names = [n for n, v in zip(pack["names"], val, strict=True) if v]
    device = resolve_device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    log: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "torch": torch.__version__,
                    "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"},
        "train": {"chips": len(train), "identities": train.num_classes},
        "val": {"chips": int(val.sum()), "identities": len(set(val_names))},
        "variants": {},
    }
    torch.manual_seed(args.seed)
    base = build_module(models_dir() / "encoder.onnx").to(device)
    log["before_val"] = val_metrics(base, val_chips, val_names, device)
    print(f"before: val {log['before_val']}", flush=True)
    for name, backbone, frozen, lr, margin, steps in VARIANTS:
        if args.only and name not in args.only:
            continue
        steps = max(1, int(steps * args.steps_scale))
        torch.manual_seed(args.seed)
        model = (build_module(models_dir() / "encoder.onnx") if backbone == "dlib"
                 else MobileFaceNetLite())
        cfg = TrainConfig()
        cfg.model.freeze_blocks = frozen
        cfg.loss.kind, cfg.loss.miner, cfg.loss.margin = "triplet", "batch_hard", margin
        cfg.sampler.p, cfg.sampler.k, cfg.sampler.batches_per_epoch = 32, 4, steps
        cfg.optim.lr, cfg.optim.epochs = lr, 1
        cfg.augment = AugmentConfig(flip_p=0.5, jitter_p=0.8, ir_p=0.2)
        cfg.eval.pairs = ""
        cfg.run.out_dir, cfg.run.seed, cfg.run.device = str(args.out / name), args.seed, \
            str(device)
        cfg.run.log_every = max(1, steps // 10)
        trainer = Trainer(cfg, dataset=train, model=model,
                          log=lambda s, n=name: print(f"[{n}] {s}", flush=True))
        t0 = time.perf_counter()
        rows = trainer.fit()
        secs = time.perf_counter() - t0
        trained = {k: v.detach().float().cpu() for k, v in model.named_parameters()
                   if v.requires_grad}
        files, chunk, size = [], {}, 0
        for k, v in trained.items():
            if chunk and size + v.numel() * 4 > CHUNK_BYTES:
                files.append(chunk)
                chunk, size = {}, 0
            chunk[k] = v
            size += v.numel() * 4
        files.append(chunk)
        names = []
        for i, c in enumerate(files):
            f = args.out / f"{name}_{i}.pt"
            torch.save(c, f)
            names.append(f.name)
        log["variants"][name] = {
            "backbone": backbone, "freeze_blocks": frozen, "lr": lr, "margin": margin,
            "steps": steps, "batch": 128, "train_seconds": secs,
            "trainable_params": int(sum(v.numel() for v in trained.values())),
            "first_loss": rows[0]["loss"] if rows else None, "last_loss": rows[-1]["loss"],
            "active_fraction": rows[-1]["active_fraction"], "files": names,
            "val": val_metrics(model, val_chips, val_names, device),
        }
        print(f"[{name}] {secs:.0f} s, val {log['variants'][name]['val']}", flush=True)
        # the trainer's own checkpoints stay on the machine (they would not fit the transfer)
        for ck in (args.out / name).glob("*"):
            ck.unlink()
        (args.out / name).rmdir()
        # written after every variant: a run cut short still reports what it finished
        log["total_seconds"] = time.perf_counter() - t_start
        (args.out / "train_log.json").write_text(json.dumps(log, indent=1, sort_keys=True)
                                                 + "\n")
    return 0


# -- 3. report -------------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    import torch

    from faceunlock.paths import models_dir
    from faceunlock.training.backbones import MobileFaceNetLite
    from faceunlock.training.dlib.resnet import build_module

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from finetune_greyscale import PairEval

    torch.set_num_threads(args.threads)
    log = json.loads((args.runs / "train_log.json").read_text())
    evaluator = PairEval(args.lfw, args.cache_dir, args.prebuilt_chips, flip=True)
    before = build_module(models_dir() / "encoder.onnx")
    out: dict[str, Any] = {"train_log": log, "protocol": (
        "LFW View 1: pairsDevTest accuracy, threshold fitted on pairsDevTrain, mirror-averaged "
        "embeddings; grey = luminance in 3 channels; variant selected by validation ROC AUC "
        "on held-out DevTrain identities")}
    out["before"] = {"grey": evaluator(before, grey=True), "colour": evaluator(before, grey=False)}
    for name, v in log["variants"].items():
        model = build_module(models_dir() / "encoder.onnx") if v["backbone"] == "dlib" \
            else MobileFaceNetLite()
        state = {}
        for f in v["files"]:
            state.update(torch.load(args.runs / f, map_location="cpu"))
        missing = model.load_state_dict(state, strict=False)
        if missing.unexpected_keys:
            raise SystemExit(f"{name}: unexpected parameters {missing.unexpected_keys}")
        model.eval()
        out[name] = {"grey": evaluator(model, grey=True), "colour": evaluator(model, grey=False)}
    dlib_names = [n for n, v in log["variants"].items() if v["backbone"] == "dlib"]
    out["selected"] = max(dlib_names, key=lambda n: log["variants"][n]["val"]["roc_auc"])
    args.out.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"{'model':<16}{'val AUC':>9}{'grey acc':>10}{'colour acc':>12}{'grey AUC':>10}"
          f"{'steps':>7}{'GPU s':>7}")
    print(f"{'dlib (before)':<16}{log['before_val']['roc_auc']:>9.4f}"
          f"{out['before']['grey']['accuracy']:>10.3f}{out['before']['colour']['accuracy']:>12.3f}"
          f"{out['before']['grey']['roc_auc']:>10.4f}{'-':>7}{'-':>7}")
    for name, v in log["variants"].items():
        mark = " *" if name == out["selected"] else ""
        print(f"{name + mark:<16}{v['val']['roc_auc']:>9.4f}{out[name]['grey']['accuracy']:>10.3f}"
              f"{out[name]['colour']['accuracy']:>12.3f}{out[name]['grey']['roc_auc']:>10.4f}"
              f"{v['steps']:>7}{v['train_seconds']:>7.0f}")
    print(f"* selected on validation; wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    lfw_default = ROOT.parent / "shared/datasets/lfw"
    p = sub.add_parser("pack", help="greyscale DevTrain chips as a JPEG pack")
    p.add_argument("--lfw", type=Path, default=lfw_default)
    p.add_argument("--cache", type=Path, default=Path("/tmp/faceunlock-chips/devtrain-people.npz"),
                   help="chip cache of the DevTrain people (made on first use)")
    p.add_argument("--out", type=Path, default=ROOT / ".gpu" / "devtrain_grey.npz")
    t = sub.add_parser("train", help="train every variant (GPU if present)")
    t.add_argument("--pack", type=Path, required=True)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--device", default="auto")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--steps-scale", type=float, default=1.0, help="scale every variant's steps")
    t.add_argument("--only", nargs="*", default=None, help="variant names to run")
    r = sub.add_parser("report", help="DevTest accuracy of the trained variants (CPU)")
    r.add_argument("--runs", type=Path, required=True)
    r.add_argument("--lfw", type=Path, default=lfw_default)
    r.add_argument("--cache-dir", type=Path, default=Path("/tmp/faceunlock-chips"))
    r.add_argument("--prebuilt-chips", type=Path, default=None)
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--out", type=Path,
                   default=ROOT / "benchmarks/results/finetune_greyscale_gpu.json")
    args = ap.parse_args(argv)
    return {"pack": cmd_pack, "train": cmd_train, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
