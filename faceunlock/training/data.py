"""Training data: identity-labelled face chips and the P x K batch sampler.

Chips are made by the runtime engine itself (:class:`faceunlock.engine.pipeline.Pipeline`,
``observe(select="center", fallback_center=True)``: detector, 5-point landmarks, dlib
alignment), once per image, so training sees exactly what inference sees. They are cached in
an ``.npz`` (uncompressed) holding:

* ``paths``: (N,) str, image paths relative to the dataset root;
* ``chips``: (N, 150, 150, 3) uint8 RGB;
* ``fallback``: (N,) bool, no face detected and the chip came from the central box;
* ``embeddings``: (N, 128) float32, the shipped encoder's descriptors of the chips (no
  flip averaging), a free baseline;
* ``version`` and ``models`` (sha256 of the detector and landmark models): a cache made by
  other alignment models is rebuilt.

Entries are keyed by relative path only: delete the cache after changing images in place.
A cache may hold more images than a dataset asks for (one cache can serve several people
lists over the same image root); missing images are computed and the file rewritten.

Datasets return ``(chip, label)``: a uint8 (150, 150, 3) tensor and an int; :meth:`batch`
gives ``(uint8 (B, 150, 150, 3), int64 (B,))`` for a list of indices, which is what
:class:`PKSampler` yields.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from faceunlock.engine.imageio import IMAGE_SUFFIXES
from faceunlock.errors import ImageReadError, InputError

CACHE_VERSION = 1
CHIP_SHAPE = (150, 150, 3)

Progress = Callable[[int, int], None]


# ---------------------------------------------------------------------------------------------
# Chip extraction and cache
# ---------------------------------------------------------------------------------------------


def default_pipeline(threads: int | None = None) -> Any:
    """The engine pipeline used for chips: default detector settings, no flip averaging
    (the cached embeddings are a by-product; chips do not depend on it)."""
    from faceunlock.engine.pipeline import Pipeline, PipelineSettings

    return Pipeline(PipelineSettings(flip_average=False, zoom=1.0, threads=threads))


def _models_key(pipeline: Any) -> str:
    """Identity of the alignment models: sha256 of detector and landmarks, from sidecars."""
    from faceunlock.engine.modelfile import load_sidecar

    parts = []
    det = getattr(pipeline, "detector", None)
    for name, obj in (("detector", det), ("landmarks", getattr(pipeline, "landmarker", None))):
        path = getattr(obj, "model_path", None) or getattr(obj, "path", None)
        try:
            sha = str(load_sidecar(path)["sha256"]) if path is not None else "unknown"
        except Exception:  # a test double or a model without sidecar
            sha = "unknown"
        parts.append(f"{name}:{sha}")
    knobs = ("min_face", "max_face", "downscale", "upsample", "threshold")
    parts.append("detect:" + "/".join(str(getattr(det, a, None)) for a in knobs))
    return ",".join(parts)


def extract_chip(pipeline: Any, image: np.ndarray) -> tuple[np.ndarray, bool, np.ndarray]:
    """(chip uint8 (150, 150, 3), fallback, embedding float32 (128,)) for one image."""
    obs = pipeline.observe(image, select="center", fallback_center=True)
    if not obs:  # pragma: no cover - fallback_center always yields one observation
        raise InputError("the pipeline returned no observation with fallback_center")
    o = obs[0]
    return (np.asarray(o.chip, np.uint8), bool(o.fallback),
            np.asarray(o.embedding, np.float32))


def _load_cache(path: Path, key: str) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["version"]) != CACHE_VERSION or str(z["models"]) != key:
                return None
            return {k: z[k] for k in ("paths", "chips", "fallback", "embeddings")}
    except (OSError, KeyError, ValueError):
        return None


def _save_cache(path: Path, key: str, data: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            arrays: dict[str, Any] = dict(data, version=np.int64(CACHE_VERSION),
                                          models=np.str_(key))
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_chips(
    root: str | Path,
    relpaths: Sequence[str],
    cache: str | Path | None = None,
    pipeline: Any = None,
    progress: Progress | None = None,
) -> dict[str, np.ndarray]:
    """Chips of ``root / relpath`` for each path, through the cache when one is given.

    Returns ``paths`` (M,) str, ``chips`` (M, 150, 150, 3) uint8, ``fallback`` (M,) bool,
    ``embeddings`` (M, 128) float32 and ``ok`` (N,) bool: which of ``relpaths`` could be
    read (unreadable images are skipped with a warning on stderr; M = ok.sum()), in the
    order of ``relpaths``. ``pipeline`` is made on first need (:func:`default_pipeline`).
    """
    root = Path(root)
    rel = [str(p) for p in relpaths]
    cache_path = Path(cache) if cache is not None else None
    key: str | None = None
    have: dict[str, int] = {}
    stored: dict[str, np.ndarray] | None = None
    if cache_path is not None and cache_path.is_file():
        if pipeline is None:
            pipeline = default_pipeline()
        key = _models_key(pipeline)
        stored = _load_cache(cache_path, key)
        if stored is not None:
            have = {str(p): i for i, p in enumerate(stored["paths"])}
    missing = [p for p in dict.fromkeys(rel) if p not in have]
    new: dict[str, tuple[np.ndarray, bool, np.ndarray]] = {}
    if missing:
        from faceunlock.engine.imageio import read_image

        if pipeline is None:
            pipeline = default_pipeline()
        for done, p in enumerate(missing):
            try:
                img = read_image(root / p)
            except ImageReadError as e:
                print(f"warning: skipping {e}", file=sys.stderr)
                continue
            new[p] = extract_chip(pipeline, img)
            if progress is not None:
                progress(done + 1, len(missing))
        if cache_path is not None and new:
            key = key or _models_key(pipeline)
            names = list(new)
            merged = {
                "paths": np.asarray(names, dtype=str),
                "chips": np.stack([new[p][0] for p in names]),
                "fallback": np.asarray([new[p][1] for p in names], bool),
                "embeddings": np.stack([new[p][2] for p in names]).astype(np.float32),
            }
            if stored is not None and len(stored["paths"]):
                merged = {k: np.concatenate([stored[k], merged[k]]) for k in merged}
            _save_cache(cache_path, key, merged)
            stored = merged
            have = {str(p): i for i, p in enumerate(stored["paths"])}
            new = {}
    ok = np.asarray([p in have or p in new for p in rel], bool)
    kept = [p for p in rel if p in have or p in new]

    def take(field: int, name: str, empty: tuple[int, ...], dtype: Any) -> np.ndarray:
        rows = [stored[name][have[p]] if p in have else new[p][field]  # type: ignore[index]
                for p in kept]
        return np.stack(rows).astype(dtype) if rows else np.zeros(empty, dtype)

    return {
        "paths": np.asarray(kept, dtype=str),
        "chips": take(0, "chips", (0, *CHIP_SHAPE), np.uint8),
        "fallback": np.asarray([bool(stored["fallback"][have[p]]) if p in have  # type: ignore[index]
                                else new[p][1] for p in kept], bool),
        "embeddings": take(2, "embeddings", (0, 128), np.float32),
        "ok": ok,
    }


# ---------------------------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------------------------


class ChipDataset(Dataset):
    """Labelled chips in memory.

    Attributes: ``root`` (image root), ``paths`` (list of relative image paths),
    ``classes`` (identity names; label ``i`` is ``classes[i]``), ``labels`` int64 (N,),
    ``chips`` uint8 (N, 150, 150, 3), ``fallback`` bool (N,), ``embeddings`` float32 (N, 128).
    """

    def __init__(
        self,
        root: str | Path,
        items: Sequence[tuple[str, str]],
        cache: str | Path | None = None,
        pipeline: Any = None,
        min_images: int = 1,
        progress: Progress | None = None,
    ) -> None:
        """items: (identity, relative image path) pairs."""
        self.root = Path(root)
        data = load_chips(self.root, [p for _, p in items], cache, pipeline, progress)
        names = [n for (n, _), ok in zip(items, data["ok"], strict=True) if ok]
        counts: dict[str, int] = {}
        for n in names:
            counts[n] = counts.get(n, 0) + 1
        keep = np.asarray([counts[n] >= min_images for n in names], bool)
        self.classes = sorted(n for n, c in counts.items() if c >= min_images)
        index = {n: i for i, n in enumerate(self.classes)}
        self.paths = [str(p) for p, k in zip(data["paths"], keep, strict=True) if k]
        self.labels = np.asarray([index[n] for n, k in zip(names, keep, strict=True) if k],
                                 np.int64)
        self.chips = np.ascontiguousarray(data["chips"][keep])
        self.fallback = data["fallback"][keep]
        self.embeddings = data["embeddings"][keep]

    @classmethod
    def from_arrays(cls, chips: np.ndarray, names: Sequence[str], paths: Sequence[str],
                    root: str | Path = ".") -> ChipDataset:
        """A dataset over chips already in memory: uint8 (N, 150, 150, 3) ``chips``, the
        identity name and relative path of each (labels follow the sorted names)."""
        if chips.ndim != 4 or chips.shape[1:] != CHIP_SHAPE or chips.dtype != np.uint8:
            raise InputError(f"chips must be uint8 (N, {CHIP_SHAPE}), got {chips.dtype} "
                             f"{chips.shape}")
        if not (len(names) == len(paths) == len(chips)):
            raise InputError("chips, names and paths must have the same length")
        ds = cls.__new__(cls)
        ds.root = Path(root)
        ds.classes = sorted(set(names))
        index = {n: i for i, n in enumerate(ds.classes)}
        ds.paths = [str(p) for p in paths]
        ds.labels = np.asarray([index[n] for n in names], np.int64)
        ds.chips = np.ascontiguousarray(chips)
        ds.fallback = np.zeros(len(chips), bool)
        ds.embeddings = np.zeros((len(chips), 128), np.float32)
        return ds

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(self.chips[i].copy()), int(self.labels[i])

    def batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (B, 150, 150, 3) chips and int64 (B,) labels."""
        idx = np.asarray(indices, np.int64)
        return torch.from_numpy(self.chips[idx]), torch.from_numpy(self.labels[idx])


def list_identity_folders(root: str | Path,
                          extensions: Iterable[str] = IMAGE_SUFFIXES) -> list[tuple[str, str]]:
    """(identity, relative path) of every image in ``root/<identity>/``, sorted (images
    directly under ``root`` and deeper levels are ignored)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"dataset folder {root} does not exist")
    exts = {e.lower() for e in extensions}
    items = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(d.iterdir()):
            if f.is_file() and f.suffix.lower() in exts:
                items.append((d.name, f"{d.name}/{f.name}"))
    return items


class FolderDataset(ChipDataset):
    """One sub-folder per identity under ``root``; every image file in it is a sample."""

    def __init__(self, root: str | Path, cache: str | Path | None = None, pipeline: Any = None,
                 min_images: int = 1, progress: Progress | None = None) -> None:
        super().__init__(root, list_identity_folders(root), cache, pipeline, min_images,
                         progress)


def read_people(path: str | Path) -> list[tuple[str, int]]:
    """Parse an LFW people list: ``peopleDevTrain.txt`` (first line the count, then
    ``name count``) or ``lfw-names.txt`` (no count line)."""
    p = Path(path)
    try:
        lines = [ln.split() for ln in p.read_text().splitlines() if ln.strip()]
    except OSError as e:
        raise InputError(f"people file {p}: cannot be read ({e.strerror})") from e
    expected = None
    if lines and len(lines[0]) == 1:
        try:
            expected = int(lines[0][0])
        except ValueError:
            raise InputError(f"people file {p}: bad first line {lines[0]!r}") from None
        lines = lines[1:]
    out = []
    for n, parts in enumerate(lines):
        try:
            if len(parts) != 2:
                raise ValueError
            out.append((parts[0], int(parts[1])))
        except ValueError:
            raise InputError(f"people file {p}: line {n + 2}: expected 'name count', got "
                             f"{' '.join(parts)!r}") from None
    if expected is not None and expected != len(out):
        raise InputError(f"people file {p}: header says {expected} people, found {len(out)}")
    return out


class LfwPeopleDataset(ChipDataset):
    """The people of an LFW people list, images ``image_root/name/name_%04d.jpg``."""

    def __init__(self, people_file: str | Path, image_root: str | Path,
                 cache: str | Path | None = None, pipeline: Any = None, min_images: int = 1,
                 progress: Progress | None = None) -> None:
        from faceunlock.evaluation.lfw import image_relpath

        items = [(name, image_relpath(name, i))
                 for name, count in read_people(people_file) for i in range(1, count + 1)]
        super().__init__(image_root, items, cache, pipeline, min_images, progress)


# ---------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------


class PKSampler(Sampler[list[int]]):
    """Batches of ``p`` distinct identities x ``k`` images each (a batch sampler).

    Identities are visited in a random order, each at most once per pass; an epoch has
    ``num_identities // p`` batches unless ``batches_per_epoch`` says otherwise (more
    batches start further passes). An identity with at least ``k`` images gives ``k``
    distinct ones; one with fewer gives all of its images plus random repeats (sampling with
    replacement). The batch is grouped by identity.

    Deterministic: the batches depend only on ``seed`` and the epoch (:meth:`set_epoch`).
    Use as ``DataLoader(ds, batch_sampler=sampler)`` or call ``dataset.batch(indices)``.
    """

    def __init__(self, labels: Sequence[int] | np.ndarray | torch.Tensor, p: int, k: int,
                 seed: int = 0, batches_per_epoch: int | None = None) -> None:
        lab = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
        if lab.ndim != 1:
            raise ValueError("labels must be one-dimensional")
        if p < 1 or k < 1:
            raise ValueError("p and k must be positive")
        self.classes = np.unique(lab)
        if len(self.classes) < p:
            raise ValueError(f"p={p} identities per batch but only {len(self.classes)} exist")
        self.members = [np.flatnonzero(lab == c) for c in self.classes]
        self.p, self.k, self.seed = p, k, int(seed)
        self.batches_per_epoch = batches_per_epoch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        if self.batches_per_epoch is not None:
            return self.batches_per_epoch
        return len(self.classes) // self.p

    def _draw(self, rng: np.random.Generator, members: np.ndarray) -> np.ndarray:
        if len(members) >= self.k:
            return rng.choice(members, self.k, replace=False)
        extra = rng.choice(members, self.k - len(members), replace=True)
        return np.concatenate([rng.permutation(members), extra])

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        per_pass = len(self.classes) // self.p
        order = np.empty(0, np.int64)
        pos = 0
        for b in range(len(self)):
            if b % per_pass == 0:
                order = rng.permutation(len(self.classes))
                pos = 0
            chosen = order[pos : pos + self.p]
            pos += self.p
            yield [int(i) for c in chosen for i in self._draw(rng, self.members[c])]
