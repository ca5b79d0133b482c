"""The operations behind the CLI verbs, the wizard and the watcher: enrol, calibrate,
authenticate, list and remove appearances. No argument parsing, no printing.
"""

from __future__ import annotations

import getpass
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from faceunlock.config import Config
from faceunlock.engine import calibration as cal
from faceunlock.engine.auth import (
    AuthParams,
    AuthResult,
    FailureCounter,
    authenticate,
    save_snapshot,
)
from faceunlock.engine.enrollment import EnrolmentSession, EnrolParams, Feedback
from faceunlock.engine.modelfile import load_sidecar
from faceunlock.engine.pipeline import Pipeline, PipelineSettings, get_pipeline
from faceunlock.engine.sources import Frame, FrameSource, make_source
from faceunlock.engine.templates import Anchor, Template, TemplateStore
from faceunlock.errors import AuthStatus, InputError, ModelError
from faceunlock.paths import user_state_dir

WINDOW = 80


def current_user() -> str:
    return os.environ.get("PAM_USER") or os.environ.get("USER") or getpass.getuser()


def pipeline_settings(cfg: Config, models: str | None = None) -> PipelineSettings:
    """Detector settings from ``[detector]``: faces below 80 px enlarge the frame, larger
    minimums shrink it, and ``max_face`` caps the pyramid. The camera paths look for a big
    (close) face first (``coarse_first``), as a user in front of the screen is."""
    mn, mx = cfg.detector.min_face, cfg.detector.max_face
    down = mn / WINDOW if mn < WINDOW else None
    return PipelineSettings(min_face=max(mn, WINDOW), max_face=mx, downscale=down, models=models,
                            coarse_first=True, precision=cfg.model.precision)


def pipeline_for(cfg: Config, models: str | None = None) -> Pipeline:
    return get_pipeline(pipeline_settings(cfg, models))


def source_for(cfg: Config, spec: str | None = None) -> FrameSource:
    c = cfg.camera
    return make_source(
        spec if spec is not None else c.source,
        width=c.width,
        height=c.height,
        fps=c.fps,
        rotation=c.rotation,
    )


def far_table(pipe: Pipeline) -> cal.FarTable:
    """The encoder's FAR table from its sidecar."""
    meta = load_sidecar(pipe.encoder.path)
    if "far_table" not in meta:
        raise ModelError(
            pipe.encoder.path, "sidecar has no far_table; run benchmarks/fit_far_table.py"
        )
    return cal.FarTable.from_json(meta["far_table"])


def frames_for(
    source: FrameSource, seconds: float | None = None, max_frames: int | None = None
) -> Iterator[Frame]:
    """Frames from an opened source, for at most ``seconds`` or ``max_frames``."""
    start = time.monotonic()
    for i, f in enumerate(source):
        if max_frames is not None and i >= max_frames:
            return
        if seconds is not None and time.monotonic() - start > seconds:
            return
        yield f


@dataclass
class EnrolOutcome:
    template: Template
    added: int
    feedback: list[Feedback]
    choice: cal.ThresholdChoice


def calibrate_template(
    template: Template, pipe: Pipeline, level: str, live: np.ndarray | None = None
) -> cal.ThresholdChoice:
    """Choose and store the threshold for ``level``. Genuine scores: each anchor against the
    others (leave-one-out) plus optional live frames' scores."""
    anchors = template.embeddings()
    genuine = cal.anchor_genuine_distances(anchors) if len(anchors) >= 2 else np.zeros(0)
    if live is not None and live.size:
        genuine = np.concatenate([genuine, live])
    choice = cal.choose_threshold(far_table(pipe), len(anchors), genuine, level)
    template.threshold = choice.threshold
    template.security_level = level
    template.calibration = choice.to_json()
    return choice


def enrol(
    store: TemplateStore,
    user: str,
    cfg: Config,
    source: FrameSource,
    *,
    label: str = "default",
    anchors: int | None = None,
    pipe: Pipeline | None = None,
    on_feedback: Callable[[Feedback], None] | None = None,
    replace: bool = False,
    max_seconds: float = 60.0,
) -> EnrolOutcome:
    """Capture anchors from ``source`` and save them (adding to an existing template unless
    ``replace``). Nothing is written unless at least 3 anchors were captured."""
    pipe = pipe or pipeline_for(cfg)
    n = anchors if anchors is not None else cfg.enrol.anchors
    session = EnrolmentSession(
        pipe, EnrolParams(anchors=n, min_face=min(80.0, cfg.detector.min_face))
    )
    feedback = []
    with source:
        for fr in frames_for(source, seconds=max_seconds):
            fb = session.offer(fr)
            feedback.append(fb)
            if on_feedback is not None:
                on_feedback(fb)
            if fb.done:
                break
    got = len(session.captures)
    if got < min(3, n):
        reasons = sorted({f.reason for f in feedback if not f.accepted and f.reason})
        raise InputError(
            f"enrolment captured only {got} usable frame(s) of {n}; nothing was saved. "
            + ("Problems seen: " + "; ".join(reasons) if reasons else "No frames were read.")
        )
    sha = pipe.encoder.sha256
    if store.exists(user) and not replace:
        template = store.load(user, expected_model_sha256=sha)
    else:
        template = Template(user=user, model_sha256=sha)
    template.add_anchors(
        Anchor.new(
            c.embedding, c.thumbnail, label=label, quality={**c.quality, "pose_" + c.pose: 1.0}
        )
        for c in session.captures
    )
    choice = calibrate_template(template, pipe, cfg.auth.security_level)
    store.save(template)
    return EnrolOutcome(template, got, feedback, choice)


def live_scores(
    pipe: Pipeline, anchors: np.ndarray, source: FrameSource, seconds: float = 3.0
) -> np.ndarray:
    """Scores (distance to nearest anchor) of the largest face in each frame of a capture."""
    scores = []
    with source:
        for fr in frames_for(source, seconds=seconds):
            obs = pipe.observe(fr.image, select="largest")
            if obs:
                scores.append(float(cal.scores_to_anchors(obs[0].embedding[None], anchors)[0]))
    return np.asarray(scores)


def calibrate(
    store: TemplateStore,
    user: str,
    cfg: Config,
    source: FrameSource | None,
    level: str | None = None,
    seconds: float = 3.0,
) -> cal.ThresholdChoice:
    pipe = pipeline_for(cfg)
    template = store.load(user, expected_model_sha256=pipe.encoder.sha256)
    live = live_scores(pipe, template.embeddings(), source, seconds) if source else None
    choice = calibrate_template(template, pipe, level or template.security_level, live)
    store.save(template)
    return choice


def failure_counter(cfg: Config, user: str, state_dir: Path | None = None) -> FailureCounter:
    """The user's consecutive-failure counter, in ``state_dir`` (default
    :func:`~faceunlock.paths.user_state_dir`; the root-run PAM helper passes its own)."""
    d = state_dir if state_dir is not None else user_state_dir()
    return FailureCounter(
        d / f"failures-{user}.json",
        cfg.auth.max_failures,
        float(cfg.auth.lockout_seconds),
    )


def authenticate_user(
    store: TemplateStore,
    user: str,
    cfg: Config,
    source: FrameSource,
    *,
    timeout: float | None = None,
    pipe: Pipeline | None = None,
    on_frame: Callable[[Any], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    state_dir: Path | None = None,
) -> AuthResult:
    """One attempt with lock-out bookkeeping. Never raises for 'not recognised'.

    Every attempt that compares a face counts as a failure until it succeeds, whatever ends it
    (no match, a timeout, ``should_stop``, a signal or KeyboardInterrupt, a kill): the failure
    is written before the first frame and forgiven on success; one that saw no face at all
    (too dark, nobody there, the source failed) is taken back.

    ``state_dir``: where the failure counter and snapshots live (default
    :func:`~faceunlock.paths.user_state_dir`)."""
    if cfg.general.disabled:
        return AuthResult(AuthStatus.DISABLED, "Face unlock is disabled", float("nan"))
    counter = failure_counter(cfg, user, state_dir)
    left = counter.locked_for()
    if left > 0:
        return AuthResult(
            AuthStatus.LOCKED_OUT,
            f"Face unlock paused for {left:.0f} s after failed attempts, type your password",
            float("nan"),
        )
    pipe = pipe or pipeline_for(cfg)
    template = store.load(user, expected_model_sha256=pipe.encoder.sha256)
    thr = template.threshold if template.threshold is not None else pipe.threshold
    a = cfg.auth
    params = AuthParams(
        timeout=timeout if timeout is not None else a.timeout,
        k=a.k,
        n=a.n,
        dark_level=a.dark_level,
        dark_fraction=a.dark_fraction,
    )
    last: dict[str, np.ndarray] = {}
    handed = [0]  # frames given to the frame loop

    def keep(fr: Frame) -> Frame:
        last["image"] = fr.image
        handed[0] += 1
        return fr

    with source:
        # count first: the failure is on disk before the first face is compared, so an
        # attempt ended by a signal, a timeout or SIGKILL still counts; forgiven on success
        charge = counter.charge()
        try:
            res = authenticate(
                pipe,
                template.embeddings(),
                thr,
                (keep(f) for f in source),
                params,
                on_frame=on_frame,
                should_stop=should_stop,
            )
        except BaseException:
            if handed[0] == 0:  # interrupted before any frame reached the loop
                counter.refund(charge)
            raise
    if res.status == AuthStatus.OK:
        counter.record(True)
    elif not any(f.faces for f in res.frames):  # no face compared: not a try at all
        counter.refund(charge)
    if res.status == AuthStatus.NO_MATCH and a.snapshots and "image" in last:
        save_snapshot((state_dir or user_state_dir()) / "snapshots", last["image"])
    return res


def appearances(template: Template) -> list[dict[str, Any]]:
    """One row per anchor for `faceunlock list`."""
    return [
        {"id": a.id, "label": a.label, "created": a.created, "quality": a.quality}
        for a in template.anchors
    ]
