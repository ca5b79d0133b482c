"""Peak memory of ``faceunlock embed`` on a large folder: it streams, so the peak stays flat
as the folder grows.

Writes N images (LFW faces, each shifted by a few pixels so no two files are the same; every
one is 250 x 250, 183 KiB decoded) into a temp folder, runs ``faceunlock embed`` on them in a
fresh process, and prints that process's peak resident set size (``ru_maxrss``)::

    .venv/bin/python benchmarks/embed_memory.py --images 10000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from faceunlock.paths import shared_dir

#: a small process that runs the CLI as its child and reports the child's peak RSS (KiB on
#: Linux) on the last stderr line (ru_maxrss survives exec: the CLI's own RUSAGE_SELF would
#: include the size of whatever process started it)
CHILD = (
    "import resource, subprocess, sys\n"
    "r = subprocess.run([sys.executable, '-m', 'faceunlock', *sys.argv[1:]])\n"
    "print('maxrss_kib', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,"
    " file=sys.stderr)\n"
    "sys.exit(r.returncode)\n"
)


def make_folder(folder: Path, n: int, faces: list[Path], size: int = 250) -> None:
    """``n`` JPEGs in ``folder`` (100 to a subfolder), cycling through ``faces``, each cut to
    its central ``size`` x ``size`` pixels (LFW images are 250 x 250, the face in the middle)."""
    bases = []
    for p in faces:
        img = cv2.imread(str(p))
        y, x = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
        bases.append(img[max(y, 0): max(y, 0) + size, max(x, 0): max(x, 0) + size])
    for i in range(n):
        img = np.roll(bases[i % len(bases)], (i // len(bases)) % 9 - 4, axis=1)
        sub = folder / f"{i // 100:04d}"
        sub.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(sub / f"{i:06d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])


def measure(folder: Path, out: Path) -> dict[str, float]:
    """Run ``faceunlock embed folder --out out`` in a child process: its peak RSS, time and
    summary."""
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-c", CHILD, "embed", str(folder), "--out", str(out), "--json"],
        capture_output=True, text=True, check=False,
    )
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"embed failed ({r.returncode}): {r.stderr[-2000:]}")
    rss_kib = int(r.stderr.strip().splitlines()[-1].split()[1])
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    return {"peak_rss_mb": round(rss_kib / 1024, 1), "seconds": round(seconds, 1),
            "images": summary["images"], "found": summary["found"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--faces", type=int, default=50, help="distinct LFW images to cycle through")
    ap.add_argument("--size", type=int, default=250, help="central crop of each, in pixels")
    args = ap.parse_args()
    lfw = shared_dir() / "datasets" / "lfw" / "images"
    faces = sorted(lfw.glob("*/*_0001.jpg"))[: args.faces]
    if not faces:
        raise SystemExit(f"no LFW images under {lfw}")
    with tempfile.TemporaryDirectory(prefix="embed-memory-") as tmp:
        folder = Path(tmp) / "images"
        make_folder(folder, args.images, faces, args.size)
        res = measure(folder, Path(tmp) / "out.npz")
    print(json.dumps({**res, "size": args.size}, sort_keys=True))


if __name__ == "__main__":
    main()
