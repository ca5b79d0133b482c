"""Command-line interface: ``faceunlock VERB ...``.

Only argument handling and output formatting live here; library code raises typed errors
(:mod:`faceunlock.errors`) that are turned into messages and exit codes in :func:`main`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO, TypeVar

import numpy as np

from faceunlock import __version__
from faceunlock.errors import (
    AuthStatus,
    FaceUnlockError,
    InputError,
    NoFaceError,
    TemplateNotFoundError,
)

T = TypeVar("T")

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}


# ---------------------------------------------------------------- helpers
def _progress(items: Sequence[T], label: str, stream: TextIO | None = None) -> Iterator[T]:
    """Yield items, drawing a one-line progress bar on stderr when it is a terminal."""
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


def _number(
    kind: type, lo: float, hi: float, key: str | None = None
) -> Callable[[str], int | float]:
    """An argparse ``type`` for a numeric option: an integer (``kind`` int) or a finite number
    between ``lo`` and ``hi``; anything else is a usage error (exit 2) naming the range, and
    the config key ``key`` the option overrides."""
    what = "an integer" if kind is int else "a number"
    allowed = f"{what} between {lo:g} and {hi:g}" + (f" (the range of {key})" if key else "")

    def parse(text: str) -> int | float:
        t = text.strip()
        value: int | float | None = None
        if kind is int:
            if re.fullmatch(r"[+-]?\d{1,18}", t):
                value = int(t)
        else:
            try:
                value = float(t)
            except ValueError:
                value = None
        if value is None or not math.isfinite(value) or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _config_number(key: str) -> Callable[[str], int | float]:
    """:func:`_number` with the range of config key ``key`` (faceunlock.config's rules)."""
    from faceunlock.config import value_range

    return _number(*value_range(key), key=key)


#: ``--source`` of the verbs that read the configured camera
SOURCE_HELP = "camera index, /dev/videoN, video file or image folder (default: camera.source)"

#: ``verify --threshold``: a Euclidean distance between two descriptors (0.6 is typical)
THRESHOLD_RANGE = (0.0, 2.0)


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, sort_keys=True))


def _settings(args: argparse.Namespace) -> Any:
    from faceunlock.engine.pipeline import PipelineSettings

    return PipelineSettings(
        min_face=getattr(args, "min_face", 80),
        max_face=getattr(args, "max_face", None),
        downscale=getattr(args, "downscale", None),
        upsample=getattr(args, "upsample", 0),
        flip_average=not getattr(args, "no_flip", False),
        zoom=getattr(args, "zoom", 1.05),
        threads=getattr(args, "threads", None),
        models=getattr(args, "model", None),
        precision=getattr(args, "precision", "auto"),
        coarse_first=getattr(args, "coarse_first", False),
    )


def _add_engine_args(p: argparse.ArgumentParser, min_face: int = 80) -> None:
    g = p.add_argument_group("engine")
    g.add_argument("--model", metavar="DIR", help="models directory (default: bundled models/)")
    g.add_argument(
        "--min-face",
        type=_config_number("detector.min_face"),
        default=min_face,
        metavar="PX",
        help=f"smallest face to detect, in pixels (default {min_face})",
    )
    g.add_argument(
        "--max-face",
        type=_config_number("detector.max_face"),
        default=None,
        metavar="PX",
        help="largest face to detect; fewer pyramid levels (default: any)",
    )
    g.add_argument(
        "--downscale",
        type=_number(float, 0.1, 16.0),
        default=None,
        metavar="F",
        help="shrink frames by F before detection (default: from --min-face)",
    )
    g.add_argument(
        "--upsample",
        type=_number(int, 0, 3),
        default=0,
        metavar="N",
        help="upsample N times before detection, for faces under 80 px",
    )
    g.add_argument(
        "--no-flip", action="store_true", help="do not average each embedding with its mirror image"
    )
    g.add_argument("--zoom", type=_number(float, 0.5, 2.0), default=1.05, metavar="Z",
                   help="magnify each chip by Z before encoding (1 = off; default 1.05)")
    g.add_argument("--threads", type=_number(int, 1, 256), default=None,
                   help="onnxruntime threads")
    g.add_argument("--coarse-first", action="store_true",
                   help="look for faces of 160 px and more on the halved frame first (the "
                        "unlock path's setting; smaller faces beside a big one are not seen)")
    g.add_argument("--precision", choices=("auto", "int8", "fp32"), default="auto",
                   help="encoder: int8 (encoder-int8.onnx), fp32 (encoder.onnx, dlib's exact "
                        "descriptors) or auto (int8 when the models directory has it)")


def list_images(root: Path) -> list[Path]:
    """Image files under ``root``, recursively, sorted."""
    if not root.is_dir():
        raise InputError(f"{root}: not a directory")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


# ---------------------------------------------------------------- verbs
def cmd_verify(args: argparse.Namespace) -> int:
    from faceunlock.engine.imageio import read_image
    from faceunlock.engine.pipeline import euclidean, get_pipeline

    pipe = get_pipeline(_settings(args))
    embs = []
    for path in (args.img1, args.img2):
        obs = pipe.observe(read_image(path), select="largest")
        if not obs:
            raise NoFaceError(f"image {path}")
        embs.append(obs[0].embedding)
    d = euclidean(embs[0], embs[1])
    thr = float(args.threshold) if args.threshold is not None else pipe.threshold
    result = {"distance": round(d, 6), "threshold": thr, "match": bool(d <= thr)}
    if args.json:
        _print_json(result)
    else:
        verdict = "same person" if result["match"] else "different people"
        print(f"distance {d:.4f} (threshold {thr:.4f}): {verdict}")
    return 0


def _read_list(list_file: Path, root: Path | None) -> tuple[list[str], list[Path]]:
    try:
        lines = list_file.read_text().splitlines()
    except OSError as e:
        raise InputError(f"list file {list_file}: cannot be read ({e.strerror})") from e
    given = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    base = root if root is not None else list_file.parent
    resolved = [Path(g) if Path(g).is_absolute() else base / g for g in given]
    return given, resolved


def embed_paths(
    paths: Sequence[Path],
    pipe: Any,
    select: str = "largest",
    fallback_center: bool = False,
    label: str = "embed",
    on_error: Callable[[Path, Exception], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """found (N,) bool, emb (N,128) float32, boxes (N,4) float32, fallback (N,) bool."""
    from faceunlock.engine.imageio import read_image
    from faceunlock.errors import ImageReadError

    n = len(paths)
    found = np.zeros(n, bool)
    fallback = np.zeros(n, bool)
    emb = np.zeros((n, 128), np.float32)
    boxes = np.zeros((n, 4), np.float32)
    for i, p in enumerate(_progress(list(paths), label)):
        try:
            img = read_image(p)
        except ImageReadError as e:
            if on_error is None:
                raise
            on_error(p, e)
            continue
        obs = pipe.observe(img, select=select, fallback_center=fallback_center)
        if obs:
            found[i] = True
            fallback[i] = obs[0].fallback
            emb[i] = obs[0].embedding
            boxes[i] = obs[0].box
    return found, emb, boxes, fallback


def _check_output_file(out: Path, option: str = "--out") -> None:
    """InputError, before any work is done, when ``out`` cannot be written as a file: it is a
    folder, or the folder it goes in (created if missing) takes no new files (read-only,
    no permission, /proc). Leaves nothing behind."""
    import tempfile

    if out.is_dir():
        raise InputError(
            f"{option} {out}: is a folder; give a file name, e.g. {out / 'embeddings.npz'}"
        )
    folder = out.parent
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"{option} {out}: {folder} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise InputError(
            f"{option} {out}: no file can be written in {folder} ({e.strerror or e})"
        ) from None


def cmd_embed(args: argparse.Namespace) -> int:
    from faceunlock.engine.pipeline import get_pipeline
    from faceunlock.fileio import atomic_write_bytes

    _check_output_file(Path(args.out))
    if args.list:
        given, paths = _read_list(Path(args.list), Path(args.root) if args.root else None)
    elif args.dir:
        root = Path(args.dir)
        paths = list_images(root)
        given = [str(p) for p in paths]
    else:
        raise InputError("give a DIR or --list FILE")
    errors: list[str] = []

    def note(p: Path, e: Exception) -> None:
        errors.append(str(e))
        print(f"warning: {e}", file=sys.stderr)

    found, emb, boxes, _ = embed_paths(paths, get_pipeline(_settings(args)), on_error=note)
    import io

    buf = io.BytesIO()
    np.savez(buf, paths=np.asarray(given, dtype=str), found=found, emb=emb, boxes=boxes)
    try:
        atomic_write_bytes(args.out, buf.getvalue())
    except OSError as e:
        raise InputError(f"--out {args.out}: cannot be written ({e.strerror or e})") from None
    summary = {
        "images": len(paths),
        "found": int(found.sum()),
        "unreadable": len(errors),
        "out": str(args.out),
    }
    if args.json:
        _print_json(summary)
    else:
        print(f"{summary['found']}/{summary['images']} images with a face -> {args.out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from faceunlock.engine.pipeline import get_pipeline
    from faceunlock.evaluation import lfw

    pipe = get_pipeline(_settings(args))
    images = Path(args.images)
    if not images.is_dir():
        raise InputError(f"--images {images}: not a directory")
    test = lfw.read_pairs(args.pairs)
    fit = lfw.read_pairs(args.fit_pairs) if args.fit_pairs else None
    wanted = test.images() + (
        [x for x in fit.images() if x not in set(test.images())] if fit else []
    )
    t0 = time.perf_counter()
    _found, emb, _, fallback = embed_paths(
        [images / r for r in wanted],
        pipe,
        select="center",
        fallback_center=True,
        label="eval lfw",
    )
    elapsed = time.perf_counter() - t0
    table = dict(zip(wanted, emb, strict=True))
    test_d = lfw.pair_distances(test, table)
    fit_d = lfw.pair_distances(fit, table) if fit else None
    res = lfw.evaluate(test, test_d, fit, fit_d, default_threshold=pipe.threshold)
    test_set = set(test.images())
    idx = [i for i, w in enumerate(wanted) if w in test_set]
    res.update(
        images=len(test_set),
        no_face=int(fallback[idx].sum()),
        no_face_fallback="central box",
        flip_average=pipe.settings.flip_average,
        zoom=pipe.settings.zoom,
        seconds=round(elapsed, 1),
        model_sha256=pipe.encoder.sha256,
    )
    if args.json:
        _print_json(res)
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


def cmd_bench(args: argparse.Namespace) -> int:
    from faceunlock.evaluation import bench

    if args.dlib:
        missing = bench.dlib_missing()
        if missing:
            raise InputError(f"--dlib: {missing}")

    def step(text: str) -> None:
        print(f"bench: {text}...", file=sys.stderr, flush=True)

    res = bench.run(
        settings=_settings(args),
        image=args.image,
        repeats=args.repeats,
        cold_start_too=not args.no_cold,
        dlib_too=args.dlib,
        on_step=step,
    )
    if args.json:
        _print_json(res)
    else:
        print(bench.format_table(res))
    return 0


def cmd_live(args: argparse.Namespace) -> int:
    from faceunlock.engine.pipeline import get_pipeline
    from faceunlock.engine.sources import open_source

    pipe = get_pipeline(_settings(args))
    count = 0
    with open_source(args.source) as src:
        for frame in src:
            obs = pipe.observe(frame.image, select="all", track=True)
            rec = {
                "frame": frame.index,
                "faces": [
                    {"box": [round(v, 1) for v in o.box], "score": round(o.score, 3)} for o in obs
                ],
                "ms": round(pipe.times.total, 2),
            }
            if args.json:
                _print_json(rec)
            else:
                boxes = ", ".join(
                    f"({o.box[0]:.0f},{o.box[1]:.0f})-({o.box[2]:.0f},{o.box[3]:.0f})" for o in obs
                )
                print(f"frame {frame.index:5d}  {len(obs)} face(s) {boxes}  {rec['ms']:.1f} ms")
            count += 1
            if args.max_frames and count >= args.max_frames:
                break
    return 0


# ---------------------------------------------------------------- enrolment & auth verbs
def _cfg() -> Any:
    from faceunlock.config import load_config

    return load_config()


def _store() -> Any:
    from faceunlock.engine.templates import TemplateStore

    return TemplateStore()


def _user(args: argparse.Namespace) -> str:
    from faceunlock.app.service import current_user

    return getattr(args, "user", None) or current_user()


def cmd_enroll(args: argparse.Namespace) -> int:
    from faceunlock.app import service

    cfg = _cfg()
    user = _user(args)
    store = _store()
    last = {"reason": ""}

    def show(fb: Any) -> None:
        if args.json:
            _print_json(fb.to_json())
            return
        if fb.accepted:
            poses = "  ".join(f"{p.name} {p.taken}/{p.quota}" for p in fb.poses)
            nxt = "" if fb.done else f" Next: {fb.instruction}"
            print(f"  anchor {fb.progress}/{fb.target} captured ({poses}).{nxt}")
            last["reason"] = ""
        elif fb.reason and fb.reason != last["reason"]:  # each new prompt once, not per frame
            print(f"  {fb.reason}", file=sys.stderr)
            last["reason"] = fb.reason

    exists = store.exists(user)
    if not args.json:
        if args.replace and exists:
            print(f"Starting over: {user}'s current face data is replaced by this capture "
                  "(only when it completes).")
        elif exists:
            print(f"Adding appearance “{args.label}” to {user}'s face data. First, look at the "
                  "camera: only the enrolled owner can add an appearance.")
        print("Look at the camera and follow the prompts (about 10-20 s).")
    live = {"loop": True, **service.LIVE}  # a video file plays as a camera would
    out = service.enrol(
        store,
        user,
        cfg,
        service.source_for(cfg, args.source, **live),
        label=args.label,
        anchors=args.anchors,
        on_feedback=show,
        replace=args.replace,
        verify_source=service.source_for(cfg, args.source, **service.LIVE),
    )
    ch = out.choice
    summary = {
        "user": user,
        "added": out.added,
        "anchors": len(out.template.anchors),
        "threshold": round(ch.threshold, 4),
        "level": ch.level,
        "expected_frr": ch.to_json()["expected_frr"],
        "warnings": list(ch.warnings),
    }
    if args.json:
        _print_json(summary)
    else:
        print(
            f"Enrolled {out.added} anchors ({summary['anchors']} in total) for {user}; "
            f"threshold {ch.threshold:.3f} ({ch.level})."
        )
        if out.session is not None:
            print(f"Captured {out.session.summary()}; {ch.frr_words()}.")
        for w in ch.warnings:
            print(f"warning: {w}", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from faceunlock.app.service import appearances

    store = _store()
    user = _user(args)
    t = store.load(user)
    rows = appearances(t)
    if args.json:
        _print_json(
            {
                "user": user,
                "threshold": t.threshold,
                "security_level": t.security_level,
                "scoring": t.calibration.get("scoring", "raw"),
                "lookalikes": t.calibration.get("lookalikes"),
                "anchors": rows,
            }
        )
    else:
        thr = "model default" if t.threshold is None else f"{t.threshold:.3f}"
        print(f"{user}: {len(rows)} anchors, threshold {thr} "
              f"({t.calibration.get('scoring', 'raw')} scores), level {t.security_level}")
        look = t.calibration.get("lookalikes")
        if isinstance(look, dict) and "margin" in look:
            print(f"  closest of {look.get('cohort_size', '?')} reference faces: "
                  f"{look['margin']:+.2f} from the threshold"
                  + (f"; {look['warning']}" if look.get("warning") else ""))
        for r in rows:
            print(f"  {r['id']}  {r['label']:<12} {r['created']}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from faceunlock.app.service import calibrate_template
    from faceunlock.engine.pipeline import get_pipeline

    store = _store()
    user = _user(args)
    removed: list[Any] = []

    def remove(t: Any) -> Any:
        if t is None:
            raise TemplateNotFoundError(user, store.path(user))
        try:
            removed.extend([t.remove_anchor(args.id)])
        except (KeyError, FaceUnlockError):
            removed.extend(t.remove_label(args.id))
        if not removed:
            raise InputError(
                f"no anchor or label {args.id!r} in {user}'s template (see `faceunlock list`)"
            )
        if not t.anchors:
            raise InputError("that would remove every anchor; use `faceunlock clear` instead")
        if len(t.anchors) >= 2:
            calibrate_template(t, get_pipeline(), t.security_level)
        return t

    t = store.update(user, remove)  # under the store's lock: re-read, change, save
    print(f"removed {len(removed)} anchor(s); {len(t.anchors)} left")
    return 0


def cmd_clear(args: argparse.Namespace) -> int:
    store = _store()
    user = _user(args)
    if not args.yes:
        raise InputError("this deletes your face template and its backup; add --yes to confirm")
    files = [q for q in (store.path(user), store.backup_path(user)) if q.exists()]
    # the key goes first: a locked or missing keyring stops it before any file is deleted
    store.delete(user, remove_key=True)
    if files:
        print(f"deleted {' and '.join(str(q) for q in files)}, and the key in the keyring")
    else:
        print("no template to delete; the key in the keyring, if any, is gone too")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from faceunlock.app import service

    cfg = _cfg()
    store, user = _store(), _user(args)
    src = None if args.no_live else service.source_for(cfg, args.source, **service.LIVE)
    if src is not None and store.exists(user):  # (no template: its error, no prompt)
        print(f"Look at the camera for {args.seconds:g} s, as you would to unlock...",
              file=sys.stderr if args.json else sys.stdout, flush=True)
    ch = service.calibrate(store, user, cfg, src, args.level, args.seconds)
    if args.json:
        _print_json(ch.to_json())
    else:
        print(
            f"threshold {ch.threshold:.4f} for level {ch.level} "
            f"(per-attempt FAR {ch.per_attempt_far:g}); {ch.frr_words()}"
        )
        for w in ch.warnings:
            print(f"warning: {w}", file=sys.stderr)
    return 0


def cmd_auth(args: argparse.Namespace, per_frame: bool = False) -> int:
    """One attempt; with ``per_frame`` (the `test` verb) every frame is printed too."""
    from faceunlock.app import service

    def show(fr: Any) -> None:
        if args.json:
            _print_json(fr.to_json())
        else:
            d = "   -  " if fr.faces == 0 else f"{fr.distance:.3f}"
            print(
                f"frame {fr.index:5d}  faces {fr.faces}  distance {d}  "
                f"{'MATCH' if fr.match else 'no'}  {fr.ms:.1f} ms"
            )

    cfg = _cfg()
    res = service.authenticate_user(
        _store(),
        _user(args),
        cfg,
        service.source_for(cfg, args.source, **service.LIVE),
        timeout=args.timeout,
        on_frame=show if per_frame else None,
    )
    if args.json:
        _print_json(res.to_json())
    else:
        print(res.message)
    return int(res.status)


def cmd_test(args: argparse.Namespace) -> int:
    return cmd_auth(args, per_frame=True)


def cmd_watch(args: argparse.Namespace) -> int:
    import signal

    from faceunlock.app import service
    from faceunlock.config import load_config
    from faceunlock.errors import TemplateNotFoundError, plain_message
    from faceunlock.unlock.lockstate import detect_backend
    from faceunlock.unlock.notify import (
        FileRateLimiter,
        Notifier,
        error_icon,
        notice_for,
        watcher_stopped_notice,
    )
    from faceunlock.unlock.watcher import AuthAttempt, Watcher

    cfg = _cfg()
    user = _user(args)
    if not cfg.watcher.enabled and not args.backend:
        print(
            "faceunlock: the lock-screen watcher is disabled (watcher.enabled = false); "
            "enable it with `faceunlock config set watcher.enabled true`",
            file=sys.stderr,
        )
        return int(AuthStatus.DISABLED)
    store = _store()
    if not store.exists(user):
        raise TemplateNotFoundError(user, store.path(user))

    # the tray's desktop notifications; the repeat limit survives systemd's restarts
    notifier = None if args.no_notify else Notifier(icon=error_icon(), limiter=FileRateLimiter())

    def show(ev: Any) -> None:
        if args.json:
            _print_json(ev.to_json())
        else:
            print(f"{ev.state.value}: {ev.detail}")
        sys.stdout.flush()
        notice = notice_for(ev.status, ev.detail)
        if notifier is not None and notice is not None:
            notifier.notify(notice)

    try:
        service.pipeline_for(cfg)  # load the models now, not at the first lock
        with detect_backend(args.backend or cfg.watcher.backend) as backend:
            watcher = Watcher(
                backend, AuthAttempt(store, user, load_config, args.source), on_event=show
            )
            old = signal.signal(signal.SIGTERM, lambda *_: watcher.stop())
            try:
                watcher.run(once=args.once)
            finally:
                signal.signal(signal.SIGTERM, old)
    except FaceUnlockError as e:  # could not start, or stopped on an error
        if notifier is not None:
            notifier.notify(watcher_stopped_notice(plain_message(e)))
        raise
    return 0


def _report_problems(cf: Any) -> None:
    """Each bad key of config file ``cf`` on stderr, with how to fix it."""
    if not cf.problems:
        return
    n = len(cf.problems)
    print(f"faceunlock: {cf.path} has {n} bad value{'s' if n > 1 else ''}; until "
          f"{'they are' if n > 1 else 'it is'} fixed, face unlock uses none of this file:",
          file=sys.stderr)
    for msg in cf.problems.values():
        print(f"  {msg}", file=sys.stderr)
    print("fix each with `faceunlock config set KEY VALUE` or `faceunlock config reset KEY` "
          "(or `faceunlock config edit`)", file=sys.stderr)


def _editor() -> list[str]:
    """The command line of the text editor for `config edit`: $VISUAL, $EDITOR, or the first
    of nano, vi and editor on the PATH."""
    import shlex
    import shutil

    for var in ("VISUAL", "EDITOR"):
        text = os.environ.get(var, "").strip()
        if text:
            cmd = shlex.split(text)
            if not shutil.which(cmd[0]):
                raise InputError(f"${var} is {text!r}, but {cmd[0]!r} is not an installed "
                                 f"program; set {var} to your text editor, e.g. "
                                 f"`{var}=vim faceunlock config edit`")
            return cmd
    for name in ("nano", "vi", "editor"):
        if shutil.which(name):
            return [name]
    raise InputError("no text editor found ($EDITOR is not set, and neither nano nor vi is "
                     "installed): set EDITOR, e.g. `EDITOR=vim faceunlock config edit`, or "
                     "change one key with `faceunlock config set KEY VALUE`")


def cmd_config(args: argparse.Namespace) -> int:
    from faceunlock import config as C

    if args.action in ("set", "reset"):
        if not args.key or (args.action == "set" and args.value is None):
            raise InputError(f"usage: faceunlock config {args.action} KEY"
                             + (" VALUE" if args.action == "set" else ""))
        if args.action == "reset" and args.value is not None:
            raise InputError("usage: faceunlock config reset KEY (it takes no value)")
        cf = (C.set_in_file(args.key, args.value) if args.action == "set"
              else C.reset_in_file(args.key))
        print(f"{args.key.strip()} = {json.dumps(C.config_get(cf.config, args.key))}")
        _report_problems(cf)
        return 0
    if args.action == "get":
        if args.value is not None:
            raise InputError("usage: faceunlock config get [KEY]")
        cf = C.read_config_file()
        if args.key:
            key = args.key.strip()
            C.config_get(cf.config, key)  # an unknown key: its error
            if key in cf.problems:
                _report_problems(cf)
                return int(AuthStatus.BAD_INPUT)
            v = C.config_get(cf.config, key)
            print(json.dumps(v) if args.json else v)
            _report_problems(cf)
            return 0
        items = [(k, v) for k, v in C.config_items(cf.config) if k not in cf.problems]
        if args.json:
            _print_json(dict(items))
        else:
            for k, v in items:
                print(f"{k} = {json.dumps(v)}")
        _report_problems(cf)
        return int(AuthStatus.BAD_INPUT) if cf.problems else 0
    # edit
    import subprocess

    if args.key or args.value is not None:
        raise InputError("usage: faceunlock config edit (it takes no key)")
    cf = C.read_config_file()
    if cf.data is None:
        C.save_config(C.Config(), cf.path)
    editor = _editor()
    subprocess.run([*editor, str(cf.path)], check=False)
    cf = C.read_config_file(cf.path)  # invalid TOML: a ConfigError naming line and column
    if cf.problems:
        _report_problems(cf)
        return int(AuthStatus.BAD_INPUT)
    print(f"{cf.path} is valid")
    return 0


def _config_epilog() -> str:
    from faceunlock.config import describe_keys

    lines = ["keys (TYPE, default; allowed values):"]
    for d in describe_keys():
        lines.append(f"  {d['key']:<22} {d['type']}, default {d['default']}; {d['allowed']}")
        lines.append(f"  {'':<22} {d['help']}")
    lines += ["", "A file with bad values is used by nothing until they are fixed; `config "
              "set` and `config reset KEY` fix them one key at a time."]
    return "\n".join(lines)


def cmd_enable(args: argparse.Namespace) -> int:
    from faceunlock import config as C

    C.save_config(C.config_set(C.load_config(), "general.disabled", args.verb == "disable"))
    print(f"face unlock {'disabled' if args.verb == 'disable' else 'enabled'}")
    return 0


def cmd_eval_unlock(args: argparse.Namespace) -> int:
    from faceunlock.evaluation import unlock_protocol

    res = unlock_protocol.run(
        Path(args.gallery), args.anchors, _settings(args), min_images=args.min_images
    )
    if args.json:
        _print_json(res)
    else:
        print(unlock_protocol.format_report(res))
    return 0


def cmd_eval_liveness(args: argparse.Namespace) -> int:
    from faceunlock.evaluation import liveness

    res = liveness.run(Path(args.live), Path(args.attack), _cfg(), args.level)
    if args.json:
        _print_json(res)
    else:
        print(liveness.format_report(res))
    return 0


def cmd_system_copy(args: argparse.Namespace) -> int:
    """Install the root-only copy of a template for the login screen.

    As the user: decrypts the template with the user's keyring key and pipes it to
    ``pkexec``/``sudo faceunlock system-copy --stdin``. As root with ``--stdin``: validates the
    payload (owner = the invoking user) and writes /var/lib/faceunlock/<user>.tpl.
    """
    import pwd
    import shutil
    import subprocess

    from faceunlock.engine.templates import SystemTemplateStore, Template
    from faceunlock.errors import RootRequiredError

    user = _user(args)
    if os.geteuid() != 0:
        if args.stdin:
            raise RootRequiredError("reading a template for the system copy")
        payload = _store().load(user).to_payload()
        elevate = shutil.which("pkexec") or shutil.which("sudo")
        if not elevate:
            raise RootRequiredError("installing the system copy (neither pkexec nor sudo found)")
        # the root side runs isolated (-I): nothing from the caller's folder (an argparse.py
        # there), PYTHONPATH or user site-packages is imported as root
        cmd = [
            elevate,
            sys.executable,
            "-I",
            "-m",
            "faceunlock",
            "system-copy",
            "--user",
            user,
            "--stdin",
        ]
        return subprocess.run(cmd, input=payload, check=False).returncode
    caller_uid = os.environ.get("PKEXEC_UID") or os.environ.get("SUDO_UID")
    if caller_uid is not None and int(caller_uid) != 0:
        caller = pwd.getpwuid(int(caller_uid)).pw_name
        if caller != user:
            raise InputError(f"{caller} may only install their own template, not {user}'s")
    if not args.stdin:
        raise InputError(
            "as root, pass the template on standard input with --stdin "
            "(run `faceunlock system-copy` as the user instead)"
        )
    t = Template.from_payload(sys.stdin.buffer.read(), origin="<stdin>")
    if t.user != user:
        raise InputError(f"the template on stdin belongs to {t.user!r}, not {user!r}")
    path = SystemTemplateStore().save(t)
    print(f"system copy written: {path}")
    return 0


def _training_module(name: str) -> Any:
    """``faceunlock.training.<name>``, imported by name on use: training needs torch (the
    ``train`` extra), which the CLI must not import at module level (import-linter)."""
    import importlib

    try:
        return importlib.import_module(f"faceunlock.training.{name}")
    except ImportError as e:
        if getattr(e, "name", None) not in ("torch", "onnx"):
            raise
        raise InputError(f"{e.name} is not installed; install the train extra: "
                         "pip install -e '.[train]'") from None


def cmd_train(args: argparse.Namespace) -> int:
    trainer = _training_module("trainer")
    t = trainer.Trainer(trainer.load_config(args.config))
    if args.resume:
        t.resume()
    t.fit(args.epochs)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    export = _training_module("export")
    enc = export.export_checkpoint(
        Path(args.ckpt),
        Path(args.out),
        far_people=Path(args.far_people) if args.far_people else None,
        lfw_root=Path(args.lfw_root) if args.lfw_root else None,
        pairs=Path(args.pairs) if args.pairs else None,
    )
    print(f"wrote {enc}; use it with --model {Path(args.out)}")
    return 0


def cmd_system(args: argparse.Namespace) -> int:
    """``faceunlock system enable|disable|status``: the PAM face line, system-wide."""
    from faceunlock.unlock import system

    if args.action == "status":
        st = system.status(args.root)
        if args.json:
            _print_json(st)
        else:
            print(system.format_status(st))
        return 0
    if args.action == "enable" and args.dry_run:
        return _system_enable_preview(args)
    fn = system.enable if args.action == "enable" else system.disable
    plan = fn(args.root, dry_run=args.dry_run)
    if args.json:
        _print_json(
            {
                "action": plan.action,
                "command": plan.command,
                "ran": plan.ran,
                "returncode": plan.returncode,
                "messages": plan.messages,
            }
        )
    else:
        for line in plan.messages:
            print(line)
    return 0


def _system_enable_preview(args: argparse.Namespace) -> int:
    """``system enable --dry-run``: the exact change, shown even where enable would refuse now
    (helper not installed yet: exit 4, with what to do first); no root rights needed."""
    from faceunlock.unlock import system

    pv = system.enable_preview(args.root)
    messages = ["dry run: nothing is changed", pv.summary, *(f"    {ln}" for ln in pv.lines)]
    if pv.problem:
        messages.append(f"enable cannot run yet: {pv.problem}")
    messages.append(f"undo after enabling: {pv.undo}")
    if args.json:
        _print_json({
            "action": "enable",
            "command": ["pam-auth-update", "--enable", "faceunlock"] if pv.automatic else None,
            "ran": False,
            "returncode": None,
            "lines": pv.lines,
            "problem": pv.problem,
            "messages": messages,
        })
    else:
        for line in messages:
            print(line)
    return int(AuthStatus.BAD_INPUT) if pv.problem else 0


# ---------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="faceunlock", description="Face unlock for the Linux desktop")
    p.add_argument("--version", action="version", version=f"faceunlock {__version__}")
    p.add_argument(
        "--camera",
        metavar="SOURCE",
        help="with no VERB: start the desktop app on this camera index, /dev/videoN, video "
        "file or image folder, for this run only (not saved)",
    )
    sub = p.add_subparsers(dest="verb", metavar="VERB")

    v = sub.add_parser("verify", help="compare the faces in two images")
    v.add_argument("img1")
    v.add_argument("img2")
    v.add_argument("--threshold", type=_number(float, *THRESHOLD_RANGE), default=None,
                   help="override the model threshold (a distance, 0-2)")
    v.add_argument("--json", action="store_true",
                   help="print the result as JSON (for scripts)")
    _add_engine_args(v)
    v.set_defaults(func=cmd_verify)

    e = sub.add_parser("embed", help="embed every image of a folder or list into an npz")
    e.add_argument("dir", nargs="?", help="folder of images (recursive)")
    e.add_argument("--list", metavar="FILE", help="file with one image path per line")
    e.add_argument("--root", metavar="DIR", help="base for relative paths in --list")
    e.add_argument("--out", required=True, metavar="OUT.npz")
    e.add_argument("--json", action="store_true",
                   help="print the result as JSON (for scripts)")
    _add_engine_args(e)
    e.set_defaults(func=cmd_embed)

    ev = sub.add_parser("eval", help="evaluate accuracy on a benchmark")
    evs = ev.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    lf = evs.add_parser("lfw", help="LFW pairs (View 1 or View 2 10-fold)")
    lf.add_argument("--pairs", required=True, metavar="PAIRS.txt")
    lf.add_argument("--images", required=True, metavar="DIR")
    lf.add_argument("--fit-pairs", metavar="PAIRS.txt", help="fit the threshold on these pairs")
    lf.add_argument("--json", action="store_true",
                    help="print the result as JSON (for scripts)")
    _add_engine_args(lf)
    lf.set_defaults(func=cmd_eval)

    ul = evs.add_parser("unlock", help="enrol K images per identity, probe the rest")
    ul.add_argument("--gallery", required=True, metavar="DIR", help="one folder per identity")
    ul.add_argument("--anchors", type=_number(int, 1, 50), default=5, metavar="K")
    ul.add_argument(
        "--min-images",
        type=_number(int, 0, 1_000_000),
        default=0,
        metavar="N",
        help="only identities with at least N images (default K+1)",
    )
    ul.add_argument("--json", action="store_true",
                    help="print the result as JSON (for scripts)")
    _add_engine_args(ul)
    ul.set_defaults(func=cmd_eval_unlock)

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
    lv.add_argument("--json", action="store_true",
                    help="print the result as JSON (for scripts)")
    lv.set_defaults(func=cmd_eval_liveness)

    def user_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--user", help="user name (default: the current user)")

    en = sub.add_parser("enroll", aliases=["enrol", "add"], help="capture face anchors")
    user_arg(en)
    en.add_argument("--source", help="camera index, /dev/videoN, video file or image folder")
    en.add_argument("--label", default="default", help="appearance label, e.g. glasses")
    en.add_argument("--anchors", type=_config_number("enrol.anchors"), default=None,
                    help="how many, 3-50 (default: enrol.anchors)")
    en.add_argument(
        "--replace",
        action="store_true",
        help="start over: replace all face data of the user with this capture (without it, "
        "the capture is added as an appearance, after a live check that you are the owner)",
    )
    en.add_argument("--json", action="store_true",
                    help="JSON lines: one per capture event, then the summary")
    en.set_defaults(func=cmd_enroll)

    ls = sub.add_parser("list", help="list enrolled anchors")
    user_arg(ls)
    ls.add_argument("--json", action="store_true",
                    help="print the result as JSON (for scripts)")
    ls.set_defaults(func=cmd_list)

    rm = sub.add_parser("remove", help="remove an anchor by id, or every anchor of a label")
    user_arg(rm)
    rm.add_argument("id", metavar="ID|LABEL")
    rm.set_defaults(func=cmd_remove)

    cl = sub.add_parser("clear", help="delete the template and its key")
    user_arg(cl)
    cl.add_argument("--yes", action="store_true")
    cl.set_defaults(func=cmd_clear)

    ca = sub.add_parser("calibrate", help="re-measure and choose the threshold")
    user_arg(ca)
    ca.add_argument("--source", help=SOURCE_HELP)
    ca.add_argument("--level", choices=["convenient", "balanced", "secure"],
                    help="security level to choose the threshold for (default: the current one)")
    ca.add_argument("--seconds", type=_number(float, 0.5, 60.0), default=3.0,
                    help="live capture length, 0.5-60 s")
    ca.add_argument("--no-live", action="store_true", help="use the anchors only")
    ca.add_argument("--json", action="store_true",
                    help="print the result as JSON (for scripts)")
    ca.set_defaults(func=cmd_calibrate)

    au = sub.add_parser("auth", help="one authentication attempt; exit code = AuthStatus")
    user_arg(au)
    au.add_argument("--source", help=SOURCE_HELP)
    au.add_argument("--timeout", type=_config_number("auth.timeout"), default=None,
                    help="how long to look for your face, 0.5-30 s (default: auth.timeout)")
    au.add_argument("--json", action="store_true",
                    help="print the result as JSON (for scripts)")
    au.set_defaults(func=cmd_auth)

    te = sub.add_parser("test", help="live test: per-frame distance, decision and ms")
    user_arg(te)
    te.add_argument("--source", help=SOURCE_HELP)
    te.add_argument("--timeout", type=_config_number("auth.timeout"), default=10.0,
                    help="how long to run, 0.5-30 s (default 10)")
    te.add_argument("--json", action="store_true", help="one JSON line per frame")
    te.set_defaults(func=cmd_test)

    wa = sub.add_parser("watch", help="unlock the lock screen when your face is seen")
    user_arg(wa)
    wa.add_argument(
        "--backend",
        choices=["auto", "logind", "freedesktop", "gnome", "mate"],
        help="lock-state service (default: watcher.backend)",
    )
    wa.add_argument("--source", help="camera index, /dev/videoN, video file or image folder")
    wa.add_argument("--once", action="store_true", help="exit after one lock/unlock cycle")
    wa.add_argument("--json", action="store_true", help="one JSON line per event")
    wa.add_argument(
        "--no-notify",
        action="store_true",
        help="no desktop notifications (by default the failures that matter are notified, "
        "each kind at most once every 5 minutes)",
    )
    wa.set_defaults(func=cmd_watch)

    co = sub.add_parser(
        "config", help="get, set, reset or edit settings",
        description="Show or change the settings in the config file "
        "(`faceunlock config get` lists them all).",
        epilog=_config_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    co.add_argument("action", choices=["get", "set", "reset", "edit"],
                    help="get [KEY], set KEY VALUE, reset KEY (to its default), or edit the "
                    "file in $EDITOR")
    co.add_argument("key", nargs="?", help="a key from the list below, e.g. auth.timeout")
    co.add_argument("value", nargs="?", help="the new value (for set)")
    co.add_argument("--json", action="store_true",
                    help="print the result as JSON (for scripts)")
    co.set_defaults(func=cmd_config)

    sc = sub.add_parser(
        "system-copy",
        help="install the root-only template copy for the login screen (asks for admin rights)",
    )
    user_arg(sc)
    sc.add_argument("--stdin", action="store_true", help=argparse.SUPPRESS)
    sc.set_defaults(func=cmd_system_copy)

    sy = sub.add_parser(
        "system", help="login screen / sudo / polkit (PAM): enable, disable, status"
    )
    sy.add_argument("action", choices=["enable", "disable", "status"])
    sy.add_argument("--root", default="/", metavar="DIR",
                    help="prefix for every system path (tests; nothing is run)")
    sy.add_argument("--dry-run", action="store_true",
                    help="show the exact change (the PAM lines, the file they go in); change "
                    "nothing, no root needed; exit 4 when it could not be made yet")
    sy.add_argument("--json", action="store_true",
                    help="print the result as JSON (for scripts)")
    sy.set_defaults(func=cmd_system)

    for name, text in (("enable", "turn face unlock on"), ("disable", "turn face unlock off")):
        x = sub.add_parser(name, help=text)
        x.set_defaults(func=cmd_enable)

    b = sub.add_parser("bench", help="per-stage speed on a 640x480 frame, cold start, memory")
    b.add_argument("--image", metavar="IMG", help="frame to use (default: built from ../shared)")
    b.add_argument("--repeats", type=_number(int, 1, 100_000), default=50)
    b.add_argument("--no-cold", action="store_true", help="skip the cold-start measurement")
    b.add_argument("--dlib", action="store_true",
                   help="also time dlib-bin on the same frame (an error when not installed)")
    b.add_argument("--json", action="store_true",
                   help="print the result as JSON (for scripts)")
    _add_engine_args(b, min_face=100)
    b.set_defaults(func=cmd_bench, max_face=400)

    lv = sub.add_parser("live", help="run the engine on a camera or video, print per-frame results")
    lv.add_argument("--source", default="0", help="camera index, /dev/videoN, video file or folder")
    lv.add_argument("--max-frames", type=_number(int, 0, 10**9), default=0,
                    help="stop after N frames (0: at the end of the source)")
    lv.add_argument("--json", action="store_true",
                    help="one JSON line per frame")
    _add_engine_args(lv)
    lv.set_defaults(func=cmd_live)

    tr = sub.add_parser("train", help="fine-tune the encoder from a TOML config (needs torch)")
    tr.add_argument("--config", required=True, metavar="FILE", help="TOML training config")
    tr.add_argument("--resume", action="store_true", help="continue from out_dir/last.pt")
    tr.add_argument("--epochs", type=_number(int, 1, 100_000), default=None, metavar="N",
                    help="train up to N epochs in total (default: optim.epochs)")
    tr.set_defaults(func=cmd_train)

    ex = sub.add_parser("export", help="turn a training checkpoint into a models directory")
    ex.add_argument("ckpt", metavar="CKPT", help="checkpoint (last.pt or best.pt)")
    ex.add_argument("--out", required=True, metavar="DIR", help="models directory to write")
    ex.add_argument("--far-people", metavar="FILE",
                    help="LFW people list (held out from training) to fit the FAR table on")
    ex.add_argument("--lfw-root", metavar="DIR", help="LFW root or its images/ folder")
    ex.add_argument("--pairs", metavar="FILE", help="LFW pairs file to fit default_threshold on")
    ex.set_defaults(func=cmd_export)
    return p


def _gui(options: list[str]) -> int:
    """The desktop app (wizard or tray) with its own ``options`` (e.g. ``--camera X``)."""
    # imported by name: the CLI is an entry point, but modules that import the CLI
    # (evaluation) must not depend on the UI (import-linter contract)
    import importlib

    try:
        gui_main = importlib.import_module("faceunlock.ui.app").main
    except ImportError as e:
        print(
            f"faceunlock: the desktop app needs PyQt6 ({e}); install it with "
            "`pip install 'faceunlock[gui]'`, or run `faceunlock --help` for the commands",
            file=sys.stderr,
        )
        return 1
    return int(gui_main(options))


def main(argv: Sequence[str] | None = None) -> int:
    if not (sys.argv[1:] if argv is None else argv):
        return _gui([])  # no arguments: the desktop app
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.camera is not None:
        if getattr(args, "verb", None):
            parser.error("--camera goes with no VERB (it starts the desktop app); the verbs "
                         "that read a camera take --source")
        return _gui(["--camera", args.camera])
    if not getattr(args, "func", None):
        parser.print_help()
        return int(AuthStatus.USAGE)
    try:
        return int(args.func(args))
    except FaceUnlockError as e:
        print(f"faceunlock: error: {e}", file=sys.stderr)
        return int(e.status)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        os._exit(0)
    except OSError as e:  # not one of ours: still a message, not a traceback
        where = f"{e.filename}: " if e.filename else ""
        print(f"faceunlock: error: {where}{e.strerror or e}", file=sys.stderr)
        return int(AuthStatus.ERROR)


if __name__ == "__main__":
    sys.exit(main())
