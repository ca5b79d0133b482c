"""Embedding many image files: the ``embed`` and ``eval`` verbs, the unlock protocol and the
benchmark scripts share this loop.

Images are read and described one at a time (:func:`iter_embeddings`), so memory does not grow
with the number of images. :func:`embed_paths` collects the results into arrays (N x 128
float32 is 512 bytes an image); :func:`write_embeddings` streams them into an ``.npz`` through
spool files, holding at most ``chunk`` results in memory.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO, TypeVar

import numpy as np

from faceunlock.engine import imageio
from faceunlock.engine.imageio import read_image
from faceunlock.engine.pipeline import EMBEDDING_DIM, FacePipeline, Select
from faceunlock.errors import ImageReadError, InputError
from faceunlock.fileio import atomic_open

T = TypeVar("T")

#: results :func:`write_embeddings` holds before it appends them to its spool files
CHUNK = 256


def list_images(root: Path) -> list[Path]:
    """Image files under ``root`` and its sub-folders (:func:`imageio.list_images`, recursive),
    or InputError when ``root`` is not a folder."""
    if not root.is_dir():
        raise InputError(f"{root}: not a directory")
    return imageio.list_images(root, recursive=True)


def read_list(list_file: Path, root: Path | None) -> tuple[list[str], list[Path]]:
    """The image paths of a list file (one a line; blank lines and ``#`` comments skipped):
    the lines as given, and each resolved against ``root`` (default: the list's folder)."""
    try:
        lines = list_file.read_text().splitlines()
    except OSError as e:
        raise InputError(f"list file {list_file}: cannot be read ({e.strerror})") from e
    given = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    base = root if root is not None else list_file.parent
    resolved = [Path(g) if Path(g).is_absolute() else base / g for g in given]
    return given, resolved


def progress(items: Sequence[T], label: str, stream: TextIO | None = None) -> Iterator[T]:
    """Yield items, drawing a one-line progress bar on ``stream`` (default stderr) when it is
    a terminal."""
    out = stream or sys.stderr
    show = out.isatty()
    n = len(items)
    t0 = time.monotonic()
    width = 0  # of the line drawn last: a shorter one is padded over it (no stale "/s/s")
    for i, item in enumerate(items):
        if show and (i % 8 == 0 or i == n - 1):
            frac = (i + 1) / max(n, 1)
            bar = "#" * int(frac * 30)
            rate = (i + 1) / max(time.monotonic() - t0, 1e-6)
            line = f"{label} [{bar:<30}] {i + 1}/{n} {rate:.1f}/s"
            out.write(f"\r{line:<{width}}")
            width = max(width, len(line))
            out.flush()
        yield item
    if show:
        out.write("\n")


@dataclass(frozen=True)
class ImageResult:
    """What one image gave: ``found`` a face, its ``embedding`` (128,) float32 and ``box``
    (4,) float32 (zeros when none), ``fallback`` when it came from the central box, and
    ``unreadable`` when the file could not be read at all."""

    found: bool
    embedding: np.ndarray
    box: np.ndarray
    fallback: bool = False
    unreadable: bool = False


def _nothing(unreadable: bool = False) -> ImageResult:
    return ImageResult(False, np.zeros(EMBEDDING_DIM, np.float32), np.zeros(4, np.float32),
                       unreadable=unreadable)


def iter_embeddings(
    paths: Sequence[Path],
    pipe: FacePipeline,
    select: Select = "largest",
    fallback_center: bool = False,
    label: str = "embed",
    on_error: Callable[[Path, Exception], None] | None = None,
) -> Iterator[ImageResult]:
    """One :class:`ImageResult` per path, in order; one image in memory at a time. A file
    that cannot be read raises, or with ``on_error`` is reported to it and yields an empty
    result."""
    for p in progress(paths, label):
        try:
            img = read_image(p)
        except ImageReadError as e:
            if on_error is None:
                raise
            on_error(p, e)
            yield _nothing(unreadable=True)
            continue
        obs = pipe.observe(img, select=select, fallback_center=fallback_center)
        del img
        if not obs:
            yield _nothing()
            continue
        o = obs[0]
        yield ImageResult(True, np.asarray(o.embedding, np.float32),
                          np.asarray(o.box, np.float32), fallback=o.fallback)


def embed_paths(
    paths: Sequence[Path],
    pipe: FacePipeline,
    select: Select = "largest",
    fallback_center: bool = False,
    label: str = "embed",
    on_error: Callable[[Path, Exception], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """found (N,) bool, emb (N, 128) float32, boxes (N, 4) float32, fallback (N,) bool."""
    n = len(paths)
    found = np.zeros(n, bool)
    fallback = np.zeros(n, bool)
    emb = np.zeros((n, EMBEDDING_DIM), np.float32)
    boxes = np.zeros((n, 4), np.float32)
    results = iter_embeddings(paths, pipe, select, fallback_center, label, on_error)
    for i, r in enumerate(results):
        found[i], fallback[i], emb[i], boxes[i] = r.found, r.fallback, r.embedding, r.box
    return found, emb, boxes, fallback


@dataclass(frozen=True)
class EmbedSummary:
    """What :func:`write_embeddings` wrote: ``images`` results, ``found`` with a face,
    ``unreadable`` files."""

    images: int
    found: int
    unreadable: int


def _npy_entry(zf: zipfile.ZipFile, name: str, dtype: np.dtype, shape: tuple[int, ...],
               body: BinaryIO) -> None:
    """Write ``name``.npy into ``zf``: the header for ``dtype``/``shape``, then the raw
    C-order bytes read from ``body`` in blocks."""
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
              "shape": shape}
    with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
        np.lib.format.write_array_header_1_0(f, header)
        body.seek(0)
        shutil.copyfileobj(body, f, 1 << 20)


def write_embeddings(
    out: str | Path, given: Sequence[str], results: Iterable[ImageResult], chunk: int = CHUNK
) -> EmbedSummary:
    """Write ``out`` (.npz: ``paths`` (N,) str as given, ``found`` (N,) bool, ``emb`` (N, 128)
    float32, ``boxes`` (N, 4) float32), one result per ``given`` path, atomically.

    The results are consumed as they come: every ``chunk`` of them is appended to spool files
    beside ``out``, which are copied into the archive at the end, so memory holds at most
    ``chunk`` results whatever N is (the same archive as ``np.savez`` writes)."""
    n = len(given)
    folder = Path(out).parent
    folder.mkdir(parents=True, exist_ok=True)
    found = np.zeros(chunk, bool)
    emb = np.zeros((chunk, EMBEDDING_DIM), np.float32)
    boxes = np.zeros((chunk, 4), np.float32)
    done = hits = unreadable = 0
    with (
        tempfile.TemporaryFile(dir=folder) as f_found,
        tempfile.TemporaryFile(dir=folder) as f_emb,
        tempfile.TemporaryFile(dir=folder) as f_boxes,
    ):
        k = 0

        def flush() -> None:
            f_found.write(found[:k].tobytes())
            f_emb.write(emb[:k].tobytes())
            f_boxes.write(boxes[:k].tobytes())

        for r in results:
            found[k], emb[k], boxes[k] = r.found, r.embedding, r.box
            hits += int(r.found)
            unreadable += int(r.unreadable)
            k += 1
            done += 1
            if k == chunk:
                flush()
                k = 0
        flush()
        if done != n:
            raise ValueError(f"{done} results for {n} paths")
        paths = np.asarray(list(given), dtype=str)
        with atomic_open(out) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
            with zf.open("paths.npy", "w", force_zip64=True) as g:
                np.lib.format.write_array(g, paths, allow_pickle=False)
            _npy_entry(zf, "found", found.dtype, (n,), f_found)
            _npy_entry(zf, "emb", emb.dtype, (n, EMBEDDING_DIM), f_emb)
            _npy_entry(zf, "boxes", boxes.dtype, (n, 4), f_boxes)
    return EmbedSummary(images=n, found=hits, unreadable=unreadable)
