"""The training verbs: ``train`` and ``export`` (need the ``train`` extra: torch, onnx)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from faceunlock.cli.common import Subparsers, bind, number
from faceunlock.errors import InputError


def _missing(e: ImportError) -> InputError:
    """The error for a training module that could not be imported: torch or onnx missing
    is the user's to fix (install the extra); anything else is re-raised by the caller."""
    return InputError(f"{e.name} is not installed; install the train extra: "
                      "pip install -e '.[train]'")


@dataclass(frozen=True)
class TrainArgs:
    config: str
    resume: bool
    epochs: int | None


def train(a: TrainArgs) -> int:
    # imported here, not at module level: training needs torch, which the CLI must not
    # load for every other verb (import-linter: only training imports torch)
    try:
        import faceunlock.training.trainer as trainer
    except ImportError as e:
        if e.name not in ("torch", "onnx"):
            raise
        raise _missing(e) from None
    t = trainer.Trainer(trainer.load_config(a.config))
    if a.resume:
        t.resume()
    t.fit(a.epochs)
    return 0


@dataclass(frozen=True)
class ExportArgs:
    ckpt: str
    out: str
    far_people: str | None
    lfw_root: str | None
    pairs: str | None


def export(a: ExportArgs) -> int:
    try:
        import faceunlock.training.export as ex
    except ImportError as e:
        if e.name not in ("torch", "onnx"):
            raise
        raise _missing(e) from None
    enc = ex.export_checkpoint(
        Path(a.ckpt),
        Path(a.out),
        far_people=Path(a.far_people) if a.far_people else None,
        lfw_root=Path(a.lfw_root) if a.lfw_root else None,
        pairs=Path(a.pairs) if a.pairs else None,
    )
    print(f"wrote {enc}; use it with --model {Path(a.out)}")
    return 0


def register(sub: Subparsers) -> None:
    tr = sub.add_parser("train", help="fine-tune the encoder from a TOML config (needs torch)")
    tr.add_argument("--config", required=True, metavar="FILE", help="TOML training config")
    tr.add_argument("--resume", action="store_true", help="continue from out_dir/last.pt")
    tr.add_argument("--epochs", type=number(int, 1, 100_000), default=None, metavar="N",
                    help="train up to N epochs in total (default: optim.epochs)")
    bind(tr, train, TrainArgs)

    ex = sub.add_parser("export", help="turn a training checkpoint into a models directory")
    ex.add_argument("ckpt", metavar="CKPT", help="checkpoint (last.pt or best.pt)")
    ex.add_argument("--out", required=True, metavar="DIR", help="models directory to write")
    ex.add_argument("--far-people", metavar="FILE",
                    help="LFW people list (held out from training) to fit the FAR table on")
    ex.add_argument("--lfw-root", metavar="DIR", help="LFW root or its images/ folder")
    ex.add_argument("--pairs", metavar="FILE", help="LFW pairs file to fit default_threshold on")
    bind(ex, export, ExportArgs)
