"""engine.batch: the npz that ``embed`` streams is the one ``np.savez`` would write, and
embedding a big folder keeps a flat memory peak (a fresh process, its own ``ru_maxrss``)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceunlock.engine.batch import ImageResult, list_images, write_embeddings

#: a small process that runs the CLI as its child, then prints the child's peak RSS (KiB) as
#: the last line on stderr. Not the CLI's own RUSAGE_SELF: Linux keeps ru_maxrss across
#: exec, so a process started from this (large) pytest process would report pytest's size
CHILD = (
    "import resource, subprocess, sys\n"
    "r = subprocess.run([sys.executable, '-m', 'faceunlock', *sys.argv[1:]])\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(r.returncode)\n"
)
PEAK_RSS_LIMIT_MB = 600


def _results(n: int, seed: int = 0) -> list[ImageResult]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        found = bool(i % 3)
        emb = rng.normal(size=128).astype(np.float32) if found else np.zeros(128, np.float32)
        box = rng.uniform(0, 200, 4).astype(np.float32) if found else np.zeros(4, np.float32)
        out.append(ImageResult(found, emb, box, unreadable=i == 4))
    return out


@pytest.mark.parametrize(("n", "chunk"), [(0, 4), (1, 4), (10, 3), (12, 4), (7, 256)])
def test_streamed_npz_equals_savez(tmp_path: Path, n: int, chunk: int) -> None:
    given = [f"dir/image-{i:03d}-{'x' * (i % 5)}.png" for i in range(n)]
    results = _results(n)
    consumed: list[int] = []

    def lazily() -> Iterator[ImageResult]:
        for i, r in enumerate(results):
            consumed.append(i)
            yield r

    out = tmp_path / "out.npz"
    s = write_embeddings(out, given, lazily(), chunk=chunk)
    assert consumed == list(range(n))
    assert (s.images, s.found, s.unreadable) == (
        n, sum(r.found for r in results), int(n > 4))
    ref = tmp_path / "ref.npz"
    np.savez(ref, paths=np.asarray(given, dtype=str),
             found=np.asarray([r.found for r in results], bool).reshape(n),
             emb=np.asarray([r.embedding for r in results], np.float32).reshape(n, 128),
             boxes=np.asarray([r.box for r in results], np.float32).reshape(n, 4))
    with np.load(out) as a, np.load(ref) as b:
        assert sorted(a.files) == sorted(b.files) == ["boxes", "emb", "found", "paths"]
        for k in b.files:
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
            np.testing.assert_array_equal(a[k], b[k])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npz", "ref.npz"]  # no spool left


def test_a_short_result_stream_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out.npz"
    with pytest.raises(ValueError, match="2 results for 3 paths"):
        write_embeddings(out, ["a", "b", "c"], iter(_results(2)), chunk=1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_embedding_2000_images_keeps_memory_flat(tmp_path: Path, lfw_dir: Path) -> None:
    """2,000 files (every 20th an LFW face, the rest faceless 160 x 160 frames): the embed
    verb's process peaks under 600 MB, and the npz has a row per file."""
    faces = sorted((lfw_dir / "images").glob("*/*_0001.jpg"))[:100]
    folder = tmp_path / "images"
    rng = np.random.default_rng(1)
    for i in range(2000):
        sub = folder / f"{i // 100:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        if i % 20 == 0:
            img = cv2.imread(str(faces[i // 20]))[45:205, 45:205]
        else:
            img = np.full((160, 160, 3), rng.integers(0, 255, 3), np.uint8)
        cv2.imwrite(str(sub / f"{i:05d}.png"), img)
    assert len(list_images(folder)) == 2000
    out = tmp_path / "out.npz"
    r = subprocess.run(
        [sys.executable, "-c", CHILD, "embed", str(folder), "--out", str(out), "--json"],
        capture_output=True, text=True, check=False, timeout=1200,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    peak_mb = int(r.stderr.strip().splitlines()[-1]) / 1024
    summary = json.loads(r.stdout)
    assert summary["images"] == 2000 and summary["unreadable"] == 0
    assert summary["found"] >= 95, summary
    with np.load(out) as z:
        assert z["emb"].shape == (2000, 128) and int(z["found"].sum()) == summary["found"]
    assert peak_mb < PEAK_RSS_LIMIT_MB, f"peak RSS {peak_mb:.0f} MB"
