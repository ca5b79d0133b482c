"""Export a trainer checkpoint (``last.pt`` / ``best.pt``) as a complete models directory.

Usage::

    python -m faceunlock.training.export CKPT --out DIR [--far-people FILE --lfw-root DIR]
                                         [--pairs FILE]

``DIR`` receives:

* ``encoder.onnx``: the fine-tuned network with exactly the runtime model's interface (uint8
  NHWC RGB 150x150 chips in, float32 (N, 128) out, dynamic batch, opset 17), written through
  :func:`faceunlock.training.dlib.resnet.export_onnx_bytes`, so exporting the same checkpoint
  twice gives byte-identical files;
* ``encoder.onnx.json``: its sidecar in the runtime's format (input spec, metric,
  ``default_threshold``, and optionally ``far_table`` and ``threshold_fit``);
* ``detector.onnx`` and ``landmarks5.npz`` with their sidecars, copied from the runtime's
  models directory (face alignment is not fine-tuned), so that ``DIR`` can be used as is:
  ``faceunlock eval lfw --model DIR`` or ``PipelineSettings(models=DIR)``.

Calibration uses the exported ONNX model itself, through the runtime pipeline reading ``DIR``
(detector, landmarks, chip zoom and mirror averaging exactly as at inference):

* ``--pairs`` (an LFW pairs file, images under ``--lfw-root``): ``default_threshold`` is the
  accuracy-optimal Euclidean threshold on those pairs (otherwise dlib's 0.6 is kept);
* ``--far-people`` (an LFW people list such as ``peopleDevTrain.txt``; use people that were
  *not* trained on): the FAR table is fitted with
  :func:`faceunlock.engine.calibration.fit_far_table` on every cross-identity pair. Without a
  FAR table the runtime cannot calibrate a user's threshold for a security level.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from faceunlock.engine.modelfile import load_sidecar, sha256_file, sidecar_path, write_sidecar
from faceunlock.errors import FaceUnlockError, InputError, ModelError
from faceunlock.fileio import atomic_write_bytes
from faceunlock.paths import models_dir
from faceunlock.training.dlib import resnet as dlib_resnet

ENCODER_NAME = "encoder.onnx"
#: runtime files copied unchanged from the source models directory
COPIED = ("detector.onnx", "landmarks5.npz")
PARITY_TOL = 1e-4
#: licence of the exported weights: dlib's CC0 base, fine-tuned by the user
LICENCE = "CC0-1.0 base weights"

Log = Callable[[str], None]


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Checkpoint -> module
# ---------------------------------------------------------------------------------------------


def load_checkpoint(ckpt: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :meth:`Trainer.save` (tensors and plain data only)."""
    p = Path(ckpt)
    if not p.is_file():
        raise InputError(f"checkpoint {p}: not found")
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle/zip errors of every kind
        raise InputError(f"checkpoint {p}: cannot be read ({e})") from e
    if not isinstance(data, dict) or "model" not in data:
        raise InputError(f"checkpoint {p}: not a faceunlock trainer checkpoint (no 'model')")
    return data


def _dat_path(ckpt: dict[str, Any]) -> Path:
    cfg = ckpt.get("config") or {}
    dat = (cfg.get("model") or {}).get("dat") if isinstance(cfg, dict) else None
    if dat and Path(dat).is_file():
        return Path(dat)
    from faceunlock.paths import models_dir

    return models_dir() / "encoder.onnx"


def build_from_checkpoint(ckpt: dict[str, Any]) -> tuple[dlib_resnet.DlibFaceResNet,
                                                          dlib_resnet.DlibResnetWeights]:
    """The trained module in eval mode (architecture from the ``.dat`` or encoder ``.onnx`` it
    started from, weights from the checkpoint), and those parsed weights (for the input
    spec)."""
    src = _dat_path(ckpt)
    weights = (dlib_resnet.weights_from_onnx(src) if src.suffix == ".onnx"
               else dlib_resnet.parse_dat(src))
    module = dlib_resnet.DlibFaceResNet(weights)
    state = {k.removeprefix("module."): v for k, v in ckpt["model"].items()}
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        raise InputError(f"checkpoint does not match dlib's ResNet: {e}") from e
    return module.float().eval(), weights


def onnx_bytes(module: dlib_resnet.DlibFaceResNet, source: str) -> bytes:
    """Deterministic ONNX bytes of ``module`` with ``source`` in the model's metadata."""
    import onnx

    data = dlib_resnet.export_onnx_bytes(module)
    model = onnx.load_from_string(data)
    model.graph.name = "faceunlock_finetuned_encoder"
    for prop in model.metadata_props:
        if prop.key == "source":
            prop.value = source
    return bytes(model.SerializeToString(deterministic=True))


def parity_chips(n: int = 4, seed: int = 0) -> np.ndarray:
    """A few deterministic uint8 chips: smooth random images (face-like statistics matter
    less than covering the input range)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (n, 10, 10, 3)).astype(np.float32)
    chips = coarse.repeat(15, axis=1).repeat(15, axis=2)
    chips += rng.normal(0.0, 12.0, chips.shape)
    return np.clip(chips, 0, 255).astype(np.uint8)


def check_parity(module: torch.nn.Module, data: bytes, chips: np.ndarray,
                 tol: float = PARITY_TOL) -> float:
    """Max |torch - onnxruntime| over ``chips``; raises ModelError above ``tol``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(chips)})
    with torch.no_grad():
        want = module(torch.from_numpy(np.ascontiguousarray(chips))).numpy()
    if got.shape != want.shape or got.dtype != np.float32:
        raise ModelError(ENCODER_NAME, f"exported output is {got.dtype} {got.shape}, torch "
                         f"gives {want.dtype} {want.shape}")
    diff = float(np.max(np.abs(got - want))) if got.size else 0.0
    if not diff <= tol:
        raise ModelError(ENCODER_NAME, f"onnxruntime and torch differ by {diff:.3g} "
                         f"(> {tol:g}); the export is wrong")
    return diff


# ---------------------------------------------------------------------------------------------
# Calibration through the runtime pipeline
# ---------------------------------------------------------------------------------------------


def image_root(lfw_root: Path) -> Path:
    """``lfw_root/images`` when it exists (the layout of ``../shared/datasets/lfw``), else
    ``lfw_root`` itself."""
    return lfw_root / "images" if (lfw_root / "images").is_dir() else lfw_root


def embed_images(pipe: Any, root: Path, relpaths: Sequence[str], log: Log = _err
                 ) -> dict[str, np.ndarray]:
    """Runtime embeddings (centre face, central-box fallback) of ``root/relpath``."""
    from faceunlock.engine.imageio import read_image

    out: dict[str, np.ndarray] = {}
    t0 = time.perf_counter()
    for i, rel in enumerate(relpaths):
        obs = pipe.observe(read_image(root / rel), select="center", fallback_center=True)
        out[rel] = np.asarray(obs[0].embedding, np.float32)
        if (i + 1) % 500 == 0 or i + 1 == len(relpaths):
            log(f"embedded {i + 1}/{len(relpaths)} ({time.perf_counter() - t0:.0f} s)")
    return out


def impostor_distances(emb: np.ndarray, labels: np.ndarray, block: int = 1024) -> np.ndarray:
    """Euclidean distance of every cross-identity pair (i < j), in row blocks."""
    e = emb.astype(np.float32)
    sq = (e * e).sum(1)
    idx = np.arange(e.shape[0])
    out = [np.zeros(0, np.float32)]
    for s in range(0, e.shape[0], block):
        blk = e[s : s + block]
        d = np.sqrt(np.maximum(sq[s : s + block, None] + sq[None, :] - 2.0 * blk @ e.T, 0.0))
        mask = (idx[None, :] > idx[s : s + block, None]) & (
            labels[s : s + block, None] != labels[None, :])
        out.append(d[mask])
    return np.concatenate(out)


def people_images(people_file: Path) -> tuple[list[str], np.ndarray]:
    from faceunlock.evaluation.lfw import image_relpath
    from faceunlock.training.data import read_people

    rels, labels = [], []
    for ident, (name, count) in enumerate(read_people(people_file)):
        for i in range(1, count + 1):
            rels.append(image_relpath(name, i))
            labels.append(ident)
    return rels, np.asarray(labels, np.int64)


def calibrate(out_dir: Path, *, far_people: Path | None, lfw_root: Path | None,
              pairs: Path | None, log: Log = _err) -> dict[str, Any]:
    """Sidecar fields fitted with the models in ``out_dir`` (which must be complete)."""
    from faceunlock.engine.calibration import fit_far_table
    from faceunlock.engine.pipeline import Pipeline, PipelineSettings
    from faceunlock.evaluation import lfw, metrics

    if far_people is None and pairs is None:
        return {}
    if lfw_root is None:
        raise InputError("--far-people and --pairs need --lfw-root (the images)")
    root = image_root(Path(lfw_root))
    if not root.is_dir():
        raise InputError(f"--lfw-root {lfw_root}: not a directory")
    pipe = Pipeline(PipelineSettings(models=str(out_dir)))
    far_rels, far_labels = people_images(far_people) if far_people else ([], np.zeros(0, int))
    pair_set = lfw.read_pairs(pairs) if pairs else None
    wanted = list(dict.fromkeys(far_rels + (pair_set.images() if pair_set else [])))
    table = embed_images(pipe, root, wanted, log)
    settings = {"flip_average": pipe.settings.flip_average, "zoom": pipe.settings.zoom}
    result: dict[str, Any] = {}
    if far_people is not None:
        emb = np.stack([table[r] for r in far_rels]) if far_rels else np.zeros((0, 128))
        imp = impostor_distances(emb, far_labels)
        far = fit_far_table(
            imp, source=f"{Path(far_people).name}, all cross-identity pairs, centre face, "
            f"embeddings of the {pipe.settings.zoom:g}-zoomed chip"
            + (" averaged with its mirror" if pipe.settings.flip_average else "")
            + "; fitted by faceunlock.training.export")
        result["far_table"] = far.to_json()
        if imp.size < 1_000_000:
            log(f"warning: only {imp.size} impostor pairs; the FAR table's small-FAR entries "
                "are extrapolated and rough (LFW DevTrain gives ~45 M)")
    if pair_set is not None:
        d = lfw.pair_distances(pair_set, table)
        thr = metrics.best_threshold(d, pair_set.same)
        result["threshold_fit"] = {
            "pairs": Path(pairs).name if pairs else "",
            "threshold": round(thr, 6),
            "accuracy": metrics.accuracy(d, pair_set.same, thr),
            **settings,
        }
        result["default_threshold"] = round(thr, 4)
    return result


# ---------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------


def _copy_runtime_models(src_dir: Path, out_dir: Path) -> None:
    for name in COPIED:
        for p in (src_dir / name, sidecar_path(src_dir / name)):
            dst = out_dir / p.name
            if not p.is_file():
                raise ModelError(p, "missing: the exported models directory needs it")
            if dst.exists() and dst.resolve() == p.resolve():
                continue
            atomic_write_bytes(dst, p.read_bytes())
        load_sidecar(out_dir / name)  # sanity: a valid sidecar came along


def export_checkpoint(ckpt: Path, out_dir: Path, *, far_people: Path | None = None,
                      lfw_root: Path | None = None, pairs: Path | None = None,
                      models_src: Path | None = None, log: Log = _err) -> Path:
    """Export ``ckpt`` to ``out_dir/encoder.onnx`` (+ sidecar) and make ``out_dir`` a complete
    models directory (detector and landmarks copied from ``models_src``, default the runtime's
    ``models/``). Returns the path of the exported ``encoder.onnx``.

    Raises InputError for a bad checkpoint or arguments, ModelError when the ONNX model does
    not reproduce the torch module within :data:`PARITY_TOL`.
    """
    ckpt = Path(ckpt)
    out_dir = Path(out_dir)
    src_dir = Path(models_src) if models_src is not None else models_dir()
    if (far_people is not None or pairs is not None) and lfw_root is None:
        raise InputError("--far-people and --pairs need --lfw-root (the images)")
    data = load_checkpoint(ckpt)
    epoch = data.get("epoch")
    module, weights = build_from_checkpoint(data)
    what = f"{ckpt.name}" + (f" (epoch {int(epoch) + 1})" if isinstance(epoch, int) else "")
    blob = onnx_bytes(module, f"fine-tuned from {what}; base dlib_face_recognition_resnet_"
                      "model_v1 (dlib, Davis King), CC0-1.0")
    diff = check_parity(module, blob, parity_chips())
    log(f"parity: max |torch - onnxruntime| = {diff:.2e}")

    out_dir.mkdir(parents=True, exist_ok=True)
    _copy_runtime_models(src_dir, out_dir)
    enc = out_dir / ENCODER_NAME
    atomic_write_bytes(enc, blob)
    meta = dlib_resnet.sidecar_meta(weights)
    meta.update(
        source=f"fine-tuned from {ckpt} by faceunlock.training.export",
        licence=LICENCE,
        checkpoint={"file": ckpt.name, "sha256": sha256_file(ckpt),
                    "epoch": epoch if isinstance(epoch, int) else None},
        parity_max_abs_diff=float(f"{diff:.3g}"),
    )
    write_sidecar(enc, meta)
    fitted = calibrate(out_dir, far_people=far_people, lfw_root=lfw_root, pairs=pairs, log=log)
    if fitted:
        meta.update(fitted)
        write_sidecar(enc, meta)
    if "far_table" not in meta:
        log("note: no FAR table (--far-people): `faceunlock calibrate` and enrolment cannot "
            "choose a threshold for a security level with this model")
    return enc


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m faceunlock.training.export",
                                 description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("ckpt", type=Path, help="trainer checkpoint (last.pt or best.pt)")
    ap.add_argument("--out", type=Path, required=True, help="output models directory")
    ap.add_argument("--far-people", type=Path, help="LFW people list for the FAR table")
    ap.add_argument("--lfw-root", type=Path, help="LFW root (or its images/ folder)")
    ap.add_argument("--pairs", type=Path, help="LFW pairs file to fit default_threshold on")
    args = ap.parse_args(argv)
    try:
        t0 = time.perf_counter()
        enc = export_checkpoint(args.ckpt, args.out, far_people=args.far_people,
                                lfw_root=args.lfw_root, pairs=args.pairs)
    except FaceUnlockError as e:
        print(f"error: {e}", file=sys.stderr)
        return int(e.status)
    print(f"wrote {enc} (sha256 {sha256_file(enc)}) in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
