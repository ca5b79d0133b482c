"""The engine verbs: ``verify``, ``embed``, ``eval lfw|unlock|liveness``, ``bench``, ``live``."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from faceunlock.cli.common import (
    THRESHOLD_RANGE,
    EngineOptions,
    Subparsers,
    add_engine_args,
    bind,
    config,
    json_arg,
    number,
    print_json,
)
from faceunlock.errors import InputError, NoFaceError


# ---------------------------------------------------------------- verify
@dataclass(frozen=True)
class VerifyArgs:
    img1: str
    img2: str
    threshold: float | None
    json: bool
    engine: EngineOptions


def verify(a: VerifyArgs) -> int:
    from faceunlock.engine.imageio import read_image
    from faceunlock.engine.pipeline import euclidean, get_pipeline

    pipe = get_pipeline(a.engine.settings())
    embs = []
    for path in (a.img1, a.img2):
        obs = pipe.observe(read_image(path), select="whole")
        if not obs:
            raise NoFaceError(f"image {path}")
        embs.append(obs[0].embedding)
    d = euclidean(embs[0], embs[1])
    thr = float(a.threshold) if a.threshold is not None else pipe.threshold
    result = {"distance": round(d, 6), "threshold": thr, "match": bool(d <= thr)}
    if a.json:
        print_json(result)
    else:
        verdict = "same person" if result["match"] else "different people"
        print(f"distance {d:.4f} (threshold {thr:.4f}): {verdict}")
    return 0


# ---------------------------------------------------------------- embed
@dataclass(frozen=True)
class EmbedArgs:
    dir: str | None
    list: str | None
    root: str | None
    out: str
    select: Literal["whole", "largest", "center"]
    json: bool
    engine: EngineOptions


def embed(a: EmbedArgs) -> int:
    from faceunlock.engine import batch
    from faceunlock.engine.pipeline import get_pipeline
    from faceunlock.fileio import check_output_file

    check_output_file(Path(a.out))
    if a.list:
        given, paths = batch.read_list(Path(a.list), Path(a.root) if a.root else None)
    elif a.dir:
        paths = batch.list_images(Path(a.dir))
        given = [str(p) for p in paths]
    else:
        raise InputError("give a DIR or --list FILE")

    def note(p: Path, e: Exception) -> None:
        print(f"warning: {e}", file=sys.stderr)

    results = batch.iter_embeddings(
        paths, get_pipeline(a.engine.settings()), select=a.select, on_error=note
    )
    try:
        s = batch.write_embeddings(a.out, given, results)
    except OSError as e:
        raise InputError(f"--out {a.out}: cannot be written ({e.strerror or e})") from None
    summary = {"images": s.images, "found": s.found, "unreadable": s.unreadable,
               "out": str(a.out)}
    if a.json:
        print_json(summary)
    else:
        print(f"{summary['found']}/{summary['images']} images with a face -> {a.out}")
    return 0


# ---------------------------------------------------------------- eval
@dataclass(frozen=True)
class EvalLfwArgs:
    pairs: str
    images: str
    fit_pairs: str | None
    json: bool
    engine: EngineOptions


def eval_lfw(a: EvalLfwArgs) -> int:
    from faceunlock.engine.pipeline import get_pipeline
    from faceunlock.evaluation import lfw

    pipe = get_pipeline(a.engine.settings())
    res = lfw.run(pipe, Path(a.images), a.pairs, a.fit_pairs)
    if a.json:
        print_json(res)
    else:
        acc = f"{res['accuracy']:.4f}"
        if "accuracy_std" in res:
            acc += f" ± {res['accuracy_std']:.4f}"
        print(f"protocol        {res['protocol']} ({res['pairs']} pairs, {res['images']} images)")
        print(f"accuracy        {acc} at threshold {res['threshold']:.4f}")
        print(f"ROC AUC         {res['roc_auc']:.5f}")
        print(f"EER             {res['eer']:.4f} (threshold {res['eer_threshold']:.4f})")
        print(f"TAR@FAR=1e-3    {res['tar_at_far_1e-3']:.4f}")
        print(f"no face found   {res['no_face']} (central box used)")
    return 0


@dataclass(frozen=True)
class EvalUnlockArgs:
    gallery: str
    anchors: int
    min_images: int
    json: bool
    engine: EngineOptions


def eval_unlock(a: EvalUnlockArgs) -> int:
    from faceunlock.evaluation import unlock_protocol

    res = unlock_protocol.run(
        Path(a.gallery), a.anchors, a.engine.settings(), min_images=a.min_images
    )
    if a.json:
        print_json(res)
    else:
        print(unlock_protocol.format_report(res))
    return 0


@dataclass(frozen=True)
class EvalLivenessArgs:
    live: str
    attack: str
    level: str | None
    seed: int
    fps: float
    json: bool


def eval_liveness(a: EvalLivenessArgs) -> int:
    from faceunlock.evaluation import liveness

    res = liveness.run(Path(a.live), Path(a.attack), config(), a.level, seed=a.seed, fps=a.fps)
    if a.json:
        print_json(res)
    else:
        print(liveness.format_report(res))
    return 0


# ---------------------------------------------------------------- bench, live
@dataclass(frozen=True)
class BenchArgs:
    image: str | None
    repeats: int
    no_cold: bool
    dlib: bool
    json: bool
    engine: EngineOptions


def bench(a: BenchArgs) -> int:
    from faceunlock.evaluation import bench as b

    if a.dlib:
        missing = b.dlib_missing()
        if missing:
            raise InputError(f"--dlib: {missing}")

    def step(text: str) -> None:
        print(f"bench: {text}...", file=sys.stderr, flush=True)

    res = b.run(
        settings=a.engine.settings(),
        image=a.image,
        repeats=a.repeats,
        cold_start_too=not a.no_cold,
        dlib_too=a.dlib,
        on_step=step,
    )
    if a.json:
        print_json(res)
    else:
        print(b.format_table(res))
    return 0


@dataclass(frozen=True)
class LiveArgs:
    source: str
    max_frames: int
    json: bool
    engine: EngineOptions


def live(a: LiveArgs) -> int:
    from faceunlock.engine.pipeline import get_pipeline
    from faceunlock.engine.sources import open_source

    pipe = get_pipeline(a.engine.settings())
    count = 0
    with open_source(a.source) as src:
        for frame in src:
            obs = pipe.observe(frame.image, select="all", track=True)
            rec = {
                "frame": frame.index,
                "faces": [
                    {"box": [round(v, 1) for v in o.box], "score": round(o.score, 3)} for o in obs
                ],
                "ms": round(pipe.times.total, 2),
            }
            if a.json:
                print_json(rec)
            else:
                boxes = ", ".join(
                    f"({o.box[0]:.0f},{o.box[1]:.0f})-({o.box[2]:.0f},{o.box[3]:.0f})" for o in obs
                )
                print(f"frame {frame.index:5d}  {len(obs)} face(s) {boxes}  {rec['ms']:.1f} ms")
            count += 1
            if a.max_frames and count >= a.max_frames:
                break
    return 0


# ---------------------------------------------------------------- parsers
def register(sub: Subparsers) -> None:
    v = sub.add_parser("verify", help="compare the faces in two images")
    v.add_argument("img1")
    v.add_argument("img2")
    v.add_argument("--threshold", type=number(float, *THRESHOLD_RANGE), default=None,
                   help="override the model threshold (a distance, 0-2)")
    json_arg(v)
    add_engine_args(v)
    bind(v, verify, VerifyArgs)

    e = sub.add_parser("embed", help="embed every image of a folder or list into an npz")
    e.add_argument("dir", nargs="?", help="folder of images (recursive)")
    e.add_argument("--list", metavar="FILE", help="file with one image path per line")
    e.add_argument("--root", metavar="DIR", help="base for relative paths in --list")
    e.add_argument("--out", required=True, metavar="OUT.npz")
    e.add_argument("--select", choices=("whole", "largest", "center"), default="whole",
                   help="the face described when an image has several: the largest one the "
                        "image's border does not cut (the default; a face cut by the border is "
                        "partial, often a bystander at the edge of a photo), the largest, or "
                        "the one nearest the image centre (centred crops, as `eval lfw` does)")
    json_arg(e)
    add_engine_args(e)
    bind(e, embed, EmbedArgs)

    ev = sub.add_parser("eval", help="evaluate accuracy on a benchmark")
    evs = ev.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    lf = evs.add_parser("lfw", help="LFW pairs (View 1 or View 2 10-fold)")
    lf.add_argument("--pairs", required=True, metavar="PAIRS.txt")
    lf.add_argument("--images", required=True, metavar="DIR")
    lf.add_argument("--fit-pairs", metavar="PAIRS.txt", help="fit the threshold on these pairs")
    json_arg(lf)
    add_engine_args(lf)
    bind(lf, eval_lfw, EvalLfwArgs)

    ul = evs.add_parser("unlock", help="enrol K images per identity, probe the rest")
    ul.add_argument("--gallery", required=True, metavar="DIR", help="one folder per identity")
    ul.add_argument("--anchors", type=number(int, 1, 50), default=5, metavar="K")
    ul.add_argument(
        "--min-images",
        type=number(int, 0, 1_000_000),
        default=0,
        metavar="N",
        help="only identities with at least N images (default K+1)",
    )
    json_arg(ul)
    add_engine_args(ul)
    bind(ul, eval_unlock, EvalUnlockArgs)

    lv = evs.add_parser(
        "liveness", help="APCER per attack kind and BPCER of the liveness stage",
        description="Each subfolder of DIR is one presentation (its images in name order are "
        "the frames of one attempt), each loose image a one-frame presentation; under "
        "--attack the first path component names the attack kind. Runs the liveness code of "
        "`faceunlock auth` with the configured detector settings.")
    lv.add_argument("--live", required=True, metavar="DIR", help="bona fide presentations")
    lv.add_argument("--attack", required=True, metavar="DIR", help="attacks, one folder per kind")
    lv.add_argument("--level", choices=["off", "passive", "active"], default=None,
                    help="liveness level (default: the config's liveness.level)")
    lv.add_argument("--seed", type=number(int, 0, 2**31 - 1), default=0,
                    help="active: the seed of each attack's challenge draw (default 0)")
    lv.add_argument("--fps", type=number(float, 1.0, 240.0), default=15.0,
                    help="active: the presentations' frame rate, the challenge's clock "
                    "(default 15)")
    json_arg(lv)
    bind(lv, eval_liveness, EvalLivenessArgs)


def register_tools(sub: Subparsers) -> None:
    """``bench`` and ``live`` (listed after the system verbs in ``--help``)."""
    b = sub.add_parser("bench", help="per-stage speed on a 640x480 frame, cold start, memory")
    b.add_argument("--image", metavar="IMG", help="frame to use (default: built from ../shared)")
    b.add_argument("--repeats", type=number(int, 1, 100_000), default=50)
    b.add_argument("--no-cold", action="store_true", help="skip the cold-start measurement")
    b.add_argument("--dlib", action="store_true",
                   help="also time dlib-bin on the same frame (an error when not installed)")
    json_arg(b)
    add_engine_args(b, min_face=100)
    b.set_defaults(max_face=400)
    bind(b, bench, BenchArgs)

    lv = sub.add_parser("live", help="run the engine on a camera or video, print per-frame results")
    lv.add_argument("--source", default="0", help="camera index, /dev/videoN, video file or folder")
    lv.add_argument("--max-frames", type=number(int, 0, 10**9), default=0,
                    help="stop after N frames (0: at the end of the source)")
    json_arg(lv, "one JSON line per frame")
    add_engine_args(lv)
    bind(lv, live, LiveArgs)

