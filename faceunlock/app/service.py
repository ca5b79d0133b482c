"""The operations behind the CLI verbs, the wizard and the watcher: enrol, calibrate,
authenticate, list and remove appearances. No argument parsing, no printing.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from faceunlock.config import Config
from faceunlock.engine import calibration as cal
from faceunlock.engine import cohort as coh
from faceunlock.engine.auth import (
    AuthParams,
    AuthResult,
    FailureCounter,
    authenticate,
    save_snapshot,
)
from faceunlock.engine.challenge import Challenge
from faceunlock.engine.enrolment import EnrolmentSession, EnrolParams, Feedback
from faceunlock.engine.liveness import Liveness, LivenessParams, get_liveness
from faceunlock.engine.modelfile import load_sidecar
from faceunlock.engine.pipeline import (
    MODEL_FILES,
    FacePipeline,
    Pipeline,
    PipelineSettings,
    get_pipeline,
)
from faceunlock.engine.sources import Frame, FrameSource, make_source
from faceunlock.engine.templates import Anchor, Template, TemplateStore, check_label, check_user
from faceunlock.errors import (
    AuthStatus,
    EnrolmentError,
    FaceUnlockError,
    InputError,
    ModelError,
    NotOwnerError,
    TemplateModelMismatchError,
    TemplateNotFoundError,
    TooDarkError,
)
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


#: how a video file or image folder plays where it stands in for a camera (enrolment, the
#: wizard, ``auth``/``test``/``calibrate``): in real time at its own frame rate, dropping
#: frames the consumer is too slow for, as a live camera does (a camera ignores these)
LIVE: dict[str, Any] = {"realtime": True, "drop_late": True}


def source_for(cfg: Config, spec: str | None = None, **settings: Any) -> FrameSource:
    """The configured camera (or ``spec``), with the config's camera settings and
    ``settings`` (e.g. ``**LIVE``, ``loop=True``) for the source kinds that take them."""
    c = cfg.camera
    return make_source(
        spec if spec is not None else c.source,
        width=c.width,
        height=c.height,
        fps=c.fps,
        rotation=c.rotation,
        **settings,
    )


_COHORTS: dict[tuple[str, str], coh.Cohort | None] = {}


def cohort(pipe: FacePipeline) -> coh.Cohort | None:
    """The score-normalisation cohort shipped for the pipeline's encoder (loaded once per
    process), or None when the encoder has none (then scores are raw distances)."""
    key = (str(pipe.encoder.path), pipe.encoder.sha256)
    if key not in _COHORTS:
        _COHORTS[key] = coh.cohort_for(pipe.encoder.path, pipe.encoder.sha256)
    return _COHORTS[key]


def scoring_of(template: Template) -> str:
    """How the template's threshold was calibrated: ``raw`` distances (templates from before
    cohort normalisation) or ``asnorm`` scores."""
    s = template.calibration.get("scoring", coh.RAW)
    return s if s in (coh.RAW, coh.ASNORM) else coh.RAW


def matcher(template: Template, pipe: FacePipeline) -> coh.Matcher:
    """The template's anchors, scored the way its threshold was calibrated."""
    if scoring_of(template) == coh.ASNORM:
        c = cohort(pipe)
        if c is None:
            raise ModelError(
                pipe.encoder.path,
                "this face was calibrated with cohort-normalised scores, but no cohort file "
                "is installed for this encoder; reinstall FaceUnlock or run "
                "`faceunlock calibrate` again",
            )
        return coh.Matcher(template.embeddings(), c)
    return coh.Matcher(template.embeddings())


def far_table(pipe: FacePipeline, scoring: str | None = None) -> cal.FarTable:
    """The FAR table of ``scoring`` (default: ``asnorm`` where a cohort is shipped): raw
    distances from the encoder's sidecar, normalised scores from the cohort's."""
    if scoring is None:
        scoring = coh.RAW if cohort(pipe) is None else coh.ASNORM
    if scoring == coh.ASNORM:
        c = cohort(pipe)
        if c is None or "far_table" not in c.meta:
            raise ModelError(pipe.encoder.path, "no cohort FAR table for this encoder")
        return cal.FarTable.from_json(c.meta["far_table"])
    meta = load_sidecar(pipe.encoder.path)
    if "far_table" not in meta:
        raise ModelError(
            pipe.encoder.path,
            "its sidecar (the .json file beside it) has no FAR table, so the security levels "
            "cannot be set: the shipped model files are missing or corrupt; reinstall "
            "FaceUnlock",
        )
    return cal.FarTable.from_json(meta["far_table"])


def installed_precision(pipe: FacePipeline, encoder_sha256: str) -> str | None:
    """The ``model.precision`` (``"fp32"``, ``"int8"``) whose encoder, in the models folder
    of ``pipe``, has the sha256 ``encoder_sha256``; None when none has."""
    mdir = pipe.encoder.path.parent
    for precision, name in MODEL_FILES["encoder"].items():
        try:
            if load_sidecar(mdir / name).get("sha256") == encoder_sha256:
                return precision
        except ModelError:
            continue
    return None


@contextlib.contextmanager
def _naming_the_model(pipe: FacePipeline) -> Iterator[None]:
    """A TemplateModelMismatchError raised inside says which installed model made the
    template, when one did (so ``model.precision`` can be set back instead of re-enrolling)."""
    try:
        yield
    except TemplateModelMismatchError as e:
        made_with = installed_precision(pipe, e.template_sha256)
        if made_with is None or e.made_with is not None:
            raise
        raise TemplateModelMismatchError(
            e.path, e.template_sha256, e.model_sha256, made_with
        ) from None


def load_template(store: TemplateStore, user: str, pipe: FacePipeline) -> Template:
    """``user``'s template for the encoder of ``pipe`` (see :func:`_naming_the_model`)."""
    with _naming_the_model(pipe):
        return store.load(user, expected_model_sha256=pipe.encoder.sha256)


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
    session: EnrolmentSession | None = None


def calibrate_template(
    template: Template, pipe: FacePipeline, level: str, live: np.ndarray | None = None
) -> cal.ThresholdChoice:
    """Choose and store the threshold for ``level``, on cohort-normalised scores where the
    encoder has a cohort (raw distances otherwise). Genuine scores: each anchor against the
    others (leave-one-out) plus optional live frames' scores (``live``: on the same scale,
    see :func:`live_scores`). Also records the look-alike check (:func:`lookalike_check`)."""
    m, table, genuine = calibration_inputs(template, pipe)
    if live is not None and live.size:
        genuine = np.concatenate([genuine, live])
    choice = choose(m, table, genuine, level)
    template.threshold = choice.threshold
    template.security_level = level
    template.calibration = choice.to_json()
    return choice


def calibration_inputs(
    template: Template, pipe: FacePipeline
) -> tuple[coh.Matcher, cal.FarTable, np.ndarray]:
    """What calibrating ``template`` starts from: its anchors scored the way a new calibration
    scores them (cohort-normalised where the encoder has a cohort), the FAR table of that
    scale, and the anchors' held-out genuine scores (:func:`heldout_scores`)."""
    m = coh.Matcher(template.embeddings(), cohort(pipe))
    return m, far_table(pipe, m.scoring), heldout_scores(m, anchor_groups(template))


def anchor_groups(template: Template) -> list[str]:
    """The capture group of each anchor: its appearance (label) and pose. Anchors of one
    group were taken moments apart in the same pose, so they are near-duplicates of each
    other. Anchors without a recorded pose (older templates) form one group per label."""
    out = []
    for a in template.anchors:
        poses = sorted(k.removeprefix("pose_") for k in a.quality if k.startswith("pose_"))
        out.append(f"{a.label}\x00{poses[0] if poses else ''}")
    return out


def heldout_scores(m: coh.Matcher, groups: list[str]) -> np.ndarray:
    """Genuine scores that are not near-duplicates: each anchor scored against the anchors
    of the *other* groups only (a whole pose held out, see :func:`anchor_groups`), on
    ``m``'s scale. Anchors with no other group have no score: a template of one pose and
    one appearance gives none (its false-reject rate then needs live frames)."""
    if len(m.anchors) < 2:
        return np.zeros(0)
    g = np.asarray(groups, dtype=object)
    if g.shape != (len(m.anchors),):
        raise InputError(f"{len(groups)} groups for {len(m.anchors)} anchors")
    s = np.where(g[:, None] == g[None, :], np.inf, m.pair_scores(m.anchors))
    best = s.min(axis=1)
    return np.asarray(best[np.isfinite(best)], np.float64)


def choose(
    m: coh.Matcher, table: cal.FarTable, genuine: np.ndarray, level: str
) -> cal.ThresholdChoice:
    """:func:`~faceunlock.engine.calibration.choose_threshold` on ``m``'s scale, with the
    look-alike check where there is a cohort."""
    choice = replace(
        cal.choose_threshold(table, len(m.anchors), genuine, level), scoring=m.scoring
    )
    if m.cohort is None:
        return choice
    look = lookalike_check(m, choice, genuine)
    warnings = (*choice.warnings, look["warning"]) if look["warning"] else choice.warnings
    return replace(choice, lookalikes=look, warnings=warnings)


#: a look-alike must score at least this far above the threshold (in normalised units)
LOOKALIKE_MARGIN = 0.5


def lookalike_check(
    m: coh.Matcher, choice: cal.ThresholdChoice, genuine: np.ndarray | None = None
) -> dict[str, Any]:
    """The cohort identities nearest to the user's anchors, against the chosen threshold.

    Returns ``nearest`` (their 5 lowest scores), ``margin`` (the lowest minus the threshold:
    how far the closest stranger is from being accepted), ``overlap`` (share of the user's own
    genuine scores that are no better than that stranger's; ``genuine``: the user's
    independent genuine scores, see :func:`calibration_inputs`) and ``warning`` (plain words,
    or empty)."""
    near = m.lookalikes(5)
    margin = float(near[0] - choice.threshold)
    g = np.asarray(genuine, np.float64) if genuine is not None else np.zeros(0)
    overlap = float(np.mean(g >= near[0])) if g.size else 0.0
    warning = ""
    if margin < LOOKALIKE_MARGIN:
        warning = (
            "Someone in FaceUnlock's reference set of "
            f"{m.cohort.size if m.cohort else 0} faces looks close to you at this level. "
            "A relative or look-alike might be accepted: choose the secure level, or use "
            "your password where it matters."
        )
    elif overlap > 0.1:
        warning = (
            "Some of your own captures match you no better than the closest stranger in the "
            "reference set: re-enrol in better light, or choose the secure level."
        )
    return {
        "nearest": [round(float(x), 4) for x in near],
        "margin": round(margin, 4),
        "overlap": round(overlap, 4),
        "cohort_size": m.cohort.size if m.cohort else 0,
        "warning": warning,
    }


def enrol_params(cfg: Config, anchors: int | None = None, **overrides: Any) -> EnrolParams:
    """The enrolment parameters of ``cfg`` (a guided, paced capture; see
    :class:`~faceunlock.engine.enrolment.EnrolParams`), with ``overrides``."""
    n = anchors if anchors is not None else cfg.enrol.anchors
    return EnrolParams(**{"anchors": n, "min_face": min(80.0, cfg.detector.min_face),
                          **overrides})


def owner_threshold(template: Template, pipe: FacePipeline) -> float:
    return float(template.threshold if template.threshold is not None else pipe.threshold)


def verify_owner(
    store: TemplateStore,
    user: str,
    cfg: Config,
    source: FrameSource,
    pipe: FacePipeline | None = None,
    **kwargs: Any,
) -> AuthResult:
    """A live check that the person at the camera is ``user``, the enrolled owner: one
    attempt through the normal authentication path (:func:`authenticate_user`, its failure
    counter included). NotOwnerError unless it succeeds. Adding an appearance starts here."""
    res = authenticate_user(store, user, cfg, source, pipe=pipe, **kwargs)
    if res.status != AuthStatus.OK:
        why = res.message or res.status.name.lower().replace("_", " ")
        raise NotOwnerError(
            f"Only the enrolled owner ({user}) can add an appearance, and the face at the "
            f"camera was not recognised as {user} ({why}). Nothing was saved. To start over "
            "with a new face, use `faceunlock enroll --replace` (or “Replace my face…”)."
        )
    return res


def check_appearance(template: Template, pipe: FacePipeline, embeddings: np.ndarray) -> None:
    """Every new anchor must match ``template`` (the owner's, before the addition) at its
    current threshold and scoring; else NotOwnerError and the whole appearance is refused."""
    e = np.asarray(embeddings, np.float32)
    if not len(template.anchors) or not e.size:
        return
    scores = matcher(template, pipe).scores(e)
    bad = int(np.sum(scores > owner_threshold(template, pipe)))
    if bad:
        raise NotOwnerError(
            f"{bad} of {len(scores)} new pictures do not match the enrolled owner "
            f"({template.user}) at the current threshold, so the whole appearance was "
            "refused and nothing was saved. Only the person already enrolled can add an "
            "appearance; to start over with a new face, use `faceunlock enroll --replace`."
        )


def _check_writable_folder(d: Path) -> None:
    """InputError unless ``d``, or the nearest folder above it that exists (``d`` is created on
    the first save), may be written."""
    probe = d
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"template folder {d}: {probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        what = "read-only" if probe == d else f"inside a read-only folder ({probe})"
        raise InputError(
            f"template folder {d} is {what}: nothing was captured; make it writable "
            f"(`chmod u+w {probe}`) and enrol again"
        )


def check_enrolment(
    store: TemplateStore, user: str, label: str, model_sha256: str, *, replace: bool = False
) -> None:
    """Everything :func:`enrol` can check before the camera opens, so a capture is never
    wasted: the user name and label, a writable template folder, and the key and template the
    save will need. Adding to a template loads it now (corrupt, made with another model, key
    deleted, keyring locked: the same errors the save would raise); a new template asks the
    keyring for its key now (creating it, as the save would)."""
    check_user(user)
    check_label(label)
    _check_writable_folder(store.directory)
    if store.exists(user) and not replace:
        store.load(user, expected_model_sha256=model_sha256)
    else:
        store.key_provider.get_key(user, create=True)


def _capture_failed(got: int, n: int, feedback: list[Feedback]) -> InputError:
    rejected = [f for f in feedback if not f.accepted and f.reason]
    reasons = sorted({f.reason for f in rejected})
    text = f"enrolment captured only {got} usable frame(s) of {n}; nothing was saved. "
    if not rejected:
        return InputError(text + "No frames were read.")
    dark = sum(f.code in ("dark", "face_dark") for f in rejected)
    if 2 * dark >= len(rejected):  # mostly too dark: say so first, with its own exit code
        return TooDarkError(
            text + f"It is too dark ({dark} of {len(rejected)} frames): turn on a light in "
            "front of you. Problems seen: " + "; ".join(reasons)
        )
    return InputError(text + "Problems seen: " + "; ".join(reasons))


def enrol(
    store: TemplateStore,
    user: str,
    cfg: Config,
    source: FrameSource,
    *,
    label: str = "default",
    anchors: int | None = None,
    pipe: FacePipeline | None = None,
    on_feedback: Callable[[Feedback], None] | None = None,
    replace: bool = False,
    max_seconds: float = 120.0,
    params: EnrolParams | None = None,
    verify_source: FrameSource | None = None,
    on_prompt: Callable[[str], None] | None = None,
) -> EnrolOutcome:
    """Capture anchors from ``source`` and save them (adding an appearance to an existing
    template unless ``replace``, which starts over).

    Everything that can fail without a capture is checked before ``source`` is opened
    (:func:`check_enrolment`). The capture is guided (:func:`enrol_params`; ``params``
    overrides): it finishes when every pose was captured, and fails with EnrolmentError,
    naming the missing pose, when a required one was never seen. Adding to an existing
    template first verifies the owner live (:func:`verify_owner`, on ``verify_source`` or
    ``source``), and every new anchor must match the template (:func:`check_appearance`,
    also on the template re-read under the store's lock), else NotOwnerError. Nothing is
    written unless the capture completed (unguided ``params``: at least 3 anchors);
    TooDarkError when the frames were mostly too dark."""
    check_user(user)  # the cheap checks before the models load; check_enrolment repeats them
    check_label(label)
    _check_writable_folder(store.directory)
    pipe = pipe or pipeline_for(cfg)
    sha = pipe.encoder.sha256
    check_enrolment(store, user, label, sha, replace=replace)
    a = cfg.auth
    p = params if params is not None else enrol_params(
        cfg, anchors, dark_level=a.dark_level, dark_fraction=a.dark_fraction
    )
    existing = (
        store.load(user, expected_model_sha256=sha) if store.exists(user) and not replace else None
    )
    session = EnrolmentSession(pipe, p)
    if existing is not None:
        verify_owner(store, user, cfg, verify_source or source, pipe, on_prompt=on_prompt)
        session.owner = matcher(existing, pipe)
        session.owner_threshold = owner_threshold(existing, pipe)
    feedback = []
    with source:
        for fr in frames_for(source, seconds=max_seconds):
            fb = session.offer(fr)
            feedback.append(fb)
            if on_feedback is not None:
                on_feedback(fb)
            if fb.done or fb.failed:
                break
    got = len(session.captures)
    if session.failure_code == "not_owner":
        raise NotOwnerError(session.failure)
    if session.failure:
        # a pose never seen because the frames were mostly too dark: say that, not the pose
        dark = _capture_failed(got, session.target, feedback)
        raise dark if isinstance(dark, TooDarkError) else EnrolmentError(session.failure)
    if not p.guided and got < min(3, p.anchors):
        raise _capture_failed(got, p.anchors, feedback)
    if not session.done and p.guided:
        err = _capture_failed(got, session.target, feedback)
        if isinstance(err, TooDarkError):
            raise err
        reasons = sorted({f.reason for f in feedback if not f.accepted and f.reason})
        raise EnrolmentError(
            f"Enrolment did not finish: {session.missing_message()}; nothing was saved. "
            + ("Problems seen: " + "; ".join(reasons) if reasons else "No frames were read.")
        )
    chosen: list[cal.ThresholdChoice] = []

    def add(current: Template | None) -> Template:
        # re-read under the store's lock: an enrolment that ran meanwhile keeps its anchors,
        # and the new ones must still match the owner's template as it is now
        if current is not None and not replace:
            check_appearance(current, pipe, session.embeddings())
        template = current if current is not None else Template(user=user, model_sha256=sha)
        template.add_anchors(
            Anchor.new(
                c.embedding, c.thumbnail, label=label,
                quality={**c.quality, "pose_" + c.pose: 1.0},
            )
            for c in session.captures
        )
        chosen.append(calibrate_template(template, pipe, cfg.auth.security_level))
        return template

    with _naming_the_model(pipe):
        template = store.update(user, add, expected_model_sha256=sha, replace=replace)
    choice = chosen[-1]
    return EnrolOutcome(template, got, feedback, choice, session)


def live_embeddings(pipe: FacePipeline, source: FrameSource, seconds: float = 3.0) -> np.ndarray:
    """The embedding of the largest face in each frame of a capture, ``(N, 128)``."""
    embs = []
    with source:
        for fr in frames_for(source, seconds=seconds):
            obs = pipe.observe(fr.image, select="largest")
            if obs:
                embs.append(obs[0].embedding)
    return np.asarray(embs, np.float32).reshape(-1, 128)


def live_scores(
    pipe: FacePipeline, anchors: np.ndarray | coh.Matcher, source: FrameSource, seconds: float = 3.0
) -> np.ndarray:
    """Scores of the largest face in each frame of a capture against ``anchors`` (a
    :class:`~faceunlock.engine.cohort.Matcher`, or bare anchors: raw distances)."""
    from faceunlock.engine.auth import as_matcher

    live = live_embeddings(pipe, source, seconds)
    return np.asarray(as_matcher(anchors).scores(live) if len(live) else [], np.float64)


def calibrate(
    store: TemplateStore,
    user: str,
    cfg: Config,
    source: FrameSource | None,
    level: str | None = None,
    seconds: float = 3.0,
) -> cal.ThresholdChoice:
    """Re-choose the threshold from the anchors (and ``seconds`` of live frames). The live
    capture runs without the store's lock; the template is then re-read under it, and the
    frames are scored against the anchors stored by then."""
    pipe = pipeline_for(cfg)
    load_template(store, user, pipe)  # fail before the camera opens
    live = live_embeddings(pipe, source, seconds) if source else None
    chosen: list[cal.ThresholdChoice] = []

    def recalibrate(current: Template | None) -> Template:
        if current is None:  # deleted while the camera ran
            raise TemplateNotFoundError(user, store.path(user))
        # on the scale calibrate_template uses (cohort-normalised where shipped)
        scores = (
            coh.Matcher(current.embeddings(), cohort(pipe)).scores(live)
            if live is not None and len(live)
            else None
        )
        chosen.append(
            calibrate_template(current, pipe, level or current.security_level, scores)
        )
        return current

    with _naming_the_model(pipe):
        store.update(user, recalibrate, expected_model_sha256=pipe.encoder.sha256)
    return chosen[-1]


def liveness_for(cfg: Config, pipe: FacePipeline, level: str | None = None) -> Liveness | None:
    """The liveness stage of ``liveness.level`` (or ``level``) for ``pipe``'s models
    directory, loaded once per process; None when the level is ``off``."""
    lvl = level or cfg.liveness.level
    if lvl == "off":
        return None
    mdir = Path(pipe.settings.models) if pipe.settings.models else None
    return get_liveness(mdir, LivenessParams(
        level=lvl, challenge_seconds=cfg.liveness.challenge_seconds,
        challenges=cfg.liveness.challenges))


#: the result of an ``active`` attempt from a front end that cannot show the challenge's
#: prompt (the lock-screen watcher): no camera, no count, the password
NO_PROMPT_MESSAGE = ("Face unlock cannot ask for the head turn or blink here "
                     "(liveness.level = active): type your password")


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
    pipe: FacePipeline | None = None,
    on_frame: Callable[[Any], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    state_dir: Path | None = None,
    on_prompt: Callable[[str], None] | None = None,
    challenge: Callable[[], Challenge] | None = None,
) -> AuthResult:
    """One attempt with lock-out bookkeeping. Never raises for 'not recognised'.

    At ``liveness.level = active``, ``on_prompt(words)`` shows the challenge's prompt; a
    caller that passes none (it cannot show one) gets DISABLED with
    :data:`NO_PROMPT_MESSAGE`, before the camera is read and without a count: never a
    silently weaker check. ``challenge``: draws the challenge (tests: a seeded one; default
    the OS's randomness, among the kinds of ``liveness.challenges``).

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
    if cfg.liveness.level == "active" and on_prompt is None:
        return AuthResult(AuthStatus.DISABLED, NO_PROMPT_MESSAGE, float("nan"))
    pipe = pipe or pipeline_for(cfg)
    template = load_template(store, user, pipe)
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
                matcher(template, pipe),
                thr,
                (keep(f) for f in source),
                params,
                on_frame=on_frame,
                should_stop=should_stop,
                liveness=liveness_for(cfg, pipe),
                on_prompt=on_prompt,
                challenge=challenge,
            )
        except BaseException:
            if handed[0] == 0:  # interrupted before any frame reached the loop
                counter.refund(charge)
            raise
    if res.status == AuthStatus.OK:
        counter.record(True)
    elif not any(f.faces for f in res.frames):  # no face compared: not a try at all
        counter.refund(charge)
    if res.status in (AuthStatus.NO_MATCH, AuthStatus.PRESENTATION_ATTACK) and a.snapshots \
            and "image" in last:
        save_snapshot((state_dir or user_state_dir()) / "snapshots", last["image"])
    return res


def appearances(template: Template) -> list[dict[str, Any]]:
    """One row per anchor for `faceunlock list`."""
    return [
        {"id": a.id, "label": a.label, "created": a.created, "quality": a.quality}
        for a in template.anchors
    ]


def remove_anchors(
    store: TemplateStore,
    user: str,
    id_or_label: str,
    pipeline: Callable[[], FacePipeline] = get_pipeline,
) -> tuple[int, Template]:
    """Remove the anchor ``id_or_label`` names, or every anchor of that label, from ``user``'s
    template under the store's lock, and re-choose its threshold (two anchors or more; the
    pipeline comes from ``pipeline``). Returns how many went and the saved template. Refuses
    (InputError) a name that matches nothing and removing the last anchor."""
    removed: list[Anchor] = []

    def remove(t: Template | None) -> Template:
        if t is None:
            raise TemplateNotFoundError(user, store.path(user))
        try:
            removed.extend([t.remove_anchor(id_or_label)])
        except (KeyError, FaceUnlockError):
            removed.extend(t.remove_label(id_or_label))
        if not removed:
            raise InputError(
                f"no anchor or label {id_or_label!r} in {user}'s template "
                "(see `faceunlock list`)"
            )
        if not t.anchors:
            raise InputError("that would remove every anchor; use `faceunlock clear` instead")
        if len(t.anchors) >= 2:
            calibrate_template(t, pipeline(), t.security_level)
        return t

    t = store.update(user, remove)  # under the store's lock: re-read, change, save
    return len(removed), t
