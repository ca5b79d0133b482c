"""``faceunlock eval liveness``: APCER per attack kind and BPCER (ISO/IEC 30107-3) of the
liveness stage on folders of presentations.

Layout: each immediate subfolder of ``--live`` or ``--attack`` is one presentation (its
images, in name order, are the frames of one attempt); each loose image is a one-frame
presentation. Under ``--attack`` the first path component names the attack kind
(``attack/screen/p1/0000.png`` and ``attack/screen/x.png`` are kind ``screen``; a loose
image directly under ``--attack`` is kind ``attack``).

Each presentation runs like an unlock attempt at the configured detector settings: frames
are observed in order on the tracked stream, and the moment ``auth.k`` frames have shown a
face the liveness stage judges them (:meth:`~faceunlock.engine.liveness.Liveness.judge`, the
code ``faceunlock auth`` runs). There is no template here, so the face judged is the
largest one of the first frame, followed through the frames by overlap, where auth judges
the face that matched. A presentation in which no
face is found in ``auth.k`` frames is not accepted (counted in ``no_face``).

At ``active``, an attack that passes the passive stage then meets the challenge exactly as
in ``auth`` (:class:`~faceunlock.engine.challenge.ChallengeRun` on the followed face): the
kind and the prompt's moment are drawn per presentation from a generator seeded by
``seed`` and the presentation's name (reproducible; ``auth`` draws from the OS), the frames
after the match are fed at ``fps`` frames a second, and frames that end before the decision
fail it, as a camera that stops would. A recording cannot see the prompt, so at ``active``
the APCER counts the challenge and the BPCER does not: the live presentations' BPCER is
that of the passive stage (``bpcer_scope``); the challenge's cost for a live user is the
business of real users, not of recorded frames.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceunlock.config import Config
from faceunlock.engine.challenge import ChallengeRun, State, draw_challenge, parse_kinds
from faceunlock.engine.imageio import IMAGE_SUFFIXES, read_image
from faceunlock.engine.liveness import Liveness, LivenessParams, Verdict
from faceunlock.engine.pipeline import FacePipeline
from faceunlock.errors import InputError


@dataclass(frozen=True)
class Presentation:
    name: str
    kind: str
    frames: tuple[Path, ...]


@dataclass
class Scored:
    """One presentation's outcome: found (a face in k frames), the verdict (None when no
    face, or at level off)."""

    presentation: Presentation
    found: bool
    verdict: Verdict | None
    #: the challenge's record (:meth:`ChallengeRun.to_json`) at ``active`` when the passive
    #: stage let the presentation through; None otherwise
    challenge: dict[str, Any] | None = None

    @property
    def score(self) -> float:
        return float("nan") if self.verdict is None else self.verdict.score

    @property
    def cues(self) -> list[str]:
        """The deny cues that fired (everything but the score)."""
        return [] if self.verdict is None else [r for r in self.verdict.reasons
                                                 if r not in ("score", "dim")]

    def accepted(self, threshold: float | None = None, level: str = "passive") -> bool:
        """Judged live: at ``threshold`` (default the verdict's own); at ``active`` the
        challenge, when one ran, must have passed too."""
        if not self.found:
            return False
        if level == "off" or self.verdict is None:
            return True
        thr = self.verdict.threshold if threshold is None else threshold
        score = self.verdict.score
        passive = not self.cues and (not np.isfinite(score) or score >= thr)
        if self.challenge is not None:
            return passive and self.challenge["state"] == State.PASSED.value
        return passive


@dataclass
class ScoredSets:
    live: list[Scored] = field(default_factory=list)
    attack: list[Scored] = field(default_factory=list)
    level: str = "passive"
    threshold: float = float("nan")
    #: how ``active`` replayed the challenge on the attacks (None at other levels)
    replay: ChallengeReplay | None = None


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES


def presentations(root: Path, attack: bool) -> list[Presentation]:
    """The presentations under ``root`` (see the module doc), sorted by path."""
    if not root.is_dir():
        raise InputError(f"eval liveness: {root} is not a folder")
    out: list[Presentation] = []

    def add(base: Path, kind: str, rel: str) -> None:
        for p in sorted(base.iterdir()):
            name = f"{rel}{p.name}"
            if _is_image(p):
                out.append(Presentation(name, kind, (p,)))
            elif p.is_dir():
                frames = tuple(sorted(f for f in p.iterdir() if _is_image(f)))
                if frames:
                    out.append(Presentation(name, kind, frames))

    if not attack:
        add(root, "live", "")
        return out
    for p in sorted(root.iterdir()):
        if _is_image(p):
            out.append(Presentation(p.name, "attack", (p,)))
        elif p.is_dir():
            add(p, p.name, f"{p.name}/")
    return out


def _overlap(b: Any, last: Any) -> float:
    ix = max(0.0, min(b[2], last[2]) - max(b[0], last[0]))
    iy = max(0.0, min(b[3], last[3]) - max(b[1], last[1]))
    return ix * iy


def follow_face(obs: Sequence[Any], last: Any) -> Any:
    """The face to judge among the observations ``obs``: the largest at first (``last``
    None), then the one overlapping the last judged box ``last`` most (one person through
    the attempt, as auth's matched face is)."""
    if last is None:
        return max(obs, key=lambda o: o.size)
    return max(obs, key=lambda o: (_overlap(o.box, last), o.size))


def _observed(pipe: FacePipeline, pres: Presentation,
              images: Iterable[np.ndarray] | None = None
              ) -> Iterator[tuple[int, np.ndarray, Any]]:
    """``(index, image, observations)`` of ``pres``'s frames (or of ``images``) in order, on
    the tracked stream."""
    pipe.reset_tracking()
    frames = images if images is not None else (read_image(p) for p in pres.frames)
    for i, image in enumerate(frames):
        yield i, image, pipe.observe(image, select="all", track=True)


def _follow_until(frames: Iterator[tuple[int, np.ndarray, Any]], k: int, first: Any = None
                  ) -> tuple[list[tuple[np.ndarray, Any]], list[Any], int]:
    """Follow one face through ``frames`` until ``k`` show it (``first``: see
    :func:`track_faces`): ``(image, box)`` and the observation per frame with the face, and
    the index of the last frame read."""
    faces: list[tuple[np.ndarray, Any]] = []
    matched: list[Any] = []
    last = -1
    for i, image, obs in frames:
        last = i
        if obs and not faces and first is not None:
            obs = [o for o in obs if _overlap(o.box, first) > 0]
        if obs:
            o = follow_face(obs, faces[-1][1] if faces else first)
            faces.append((image, o.box))
            matched.append(o)
        if len(faces) >= k:
            break
    return faces, matched, last


def track_faces(pipe: FacePipeline, pres: Presentation, k: int,
                images: Iterable[np.ndarray] | None = None, first: Any = None
                ) -> list[tuple[np.ndarray, Any]]:
    """Observe ``pres``'s frames in order (tracked), following one face, until ``k`` show it:
    ``(image, box)`` per frame with the face (fewer than ``k`` when the frames ran out).
    ``images``: the frames themselves (RGB uint8, in order), instead of reading
    ``pres.frames`` (a benchmark that builds its presentations in memory). ``first``: a box
    (left, top, right, bottom) where the person to follow is; the first face judged must
    overlap it (the stand-in for auth's matched face when a frame holds two people; without
    it, the largest face)."""
    return _follow_until(_observed(pipe, pres, images), k, first)[0]


@dataclass(frozen=True)
class ChallengeReplay:
    """How ``active`` replays its challenge on recorded frames (see the module doc)."""

    seconds: float = 4.0
    kinds: str = "turn,blink"
    seed: int = 0
    fps: float = 15.0

    def __post_init__(self) -> None:
        parse_kinds(self.kinds)  # validates
        if not self.fps > 0:
            raise InputError(f"eval liveness: --fps must be positive, got {self.fps}")

    def draw(self, pres: Presentation) -> Any:
        rng = random.Random(f"{self.seed}/{pres.kind}/{pres.name}")
        return draw_challenge(rng, self.seconds, parse_kinds(self.kinds))


def judge_presentation(pipe: FacePipeline, stage: Liveness | None, pres: Presentation,
                       k: int, images: Iterable[np.ndarray] | None = None,
                       first: Any = None, challenge: ChallengeReplay | None = None) -> Scored:
    """Observe ``pres``'s frames (or ``images``; ``first``: see :func:`track_faces`) in
    order (tracked) until ``k`` show a face, then judge; with ``challenge`` (level
    ``active``) a presentation the passive stage lets through then meets the challenge on
    the frames after the match."""
    frames = _observed(pipe, pres, images)
    faces, matched, at = _follow_until(frames, k, first)
    if len(faces) < k:
        return Scored(pres, False, None)
    verdict = None if stage is None else stage.judge(faces)
    if challenge is None or verdict is None or not verdict.live:
        return Scored(pres, True, verdict)
    run = ChallengeRun(challenge.draw(pres), matched, at / challenge.fps)
    for i, image, obs in frames:
        if run.feed(i / challenge.fps, obs, image) is not State.PENDING:
            break
    run.expire(f"the frames ended before the {run.challenge.action}")
    return Scored(pres, True, verdict, run.to_json())


def score_sets(live: Path | None, attack: Path | None, cfg: Config | None = None,
               level: str | None = None, pipe: FacePipeline | None = None,
               seed: int = 0, fps: float = 15.0) -> ScoredSets:
    """Judge every presentation under ``live`` and ``attack`` at ``level`` (default the
    config's ``liveness.level``), with the config's detector settings; at ``active`` the
    attacks meet the challenge, drawn from ``seed``, their frames at ``fps``."""
    from faceunlock.app import service

    cfg = cfg or Config()
    lvl = level or cfg.liveness.level
    LivenessParams(level=lvl)  # validates the level
    replay = ChallengeReplay(cfg.liveness.challenge_seconds, cfg.liveness.challenges, seed,
                             fps) if lvl == "active" else None
    pipe = pipe or service.pipeline_for(cfg)
    stage = service.liveness_for(cfg, pipe, lvl)
    k = cfg.auth.k
    out = ScoredSets(level=lvl, threshold=float("nan") if stage is None else stage.threshold,
                     replay=replay)
    if live is not None:
        out.live = [judge_presentation(pipe, stage, p, k) for p in presentations(live, False)]
    if attack is not None:
        out.attack = [judge_presentation(pipe, stage, p, k, challenge=replay)
                      for p in presentations(attack, True)]
    return out


def rates(sets: ScoredSets, threshold: float | None = None) -> dict[str, Any]:
    """APCER per kind and worst, BPCER, at ``threshold`` (default the stage's)."""
    kinds = sorted({s.presentation.kind for s in sets.attack})
    per_kind = {}
    for kind in kinds:
        xs = [s for s in sets.attack if s.presentation.kind == kind]
        per_kind[kind] = float(np.mean([s.accepted(threshold, sets.level) for s in xs]))
    bpcer = float(np.mean([not s.accepted(threshold, sets.level) for s in sets.live])) \
        if sets.live else float("nan")
    return {
        "apcer": max(per_kind.values()) if per_kind else float("nan"),
        "bpcer": bpcer,
        "per_kind": per_kind,
    }


def choose_threshold(sets: ScoredSets, target_bpcer: float = 0.05) -> dict[str, Any]:
    """The operating point on ``sets``: let ``lo`` be the lowest threshold at which the worst
    kind's APCER is as low as it gets while BPCER stays within ``target_bpcer``, and ``hi``
    the highest threshold keeping BPCER within it; the point is their midpoint (as far from
    accepting the fit attacks as from rejecting the fit live faces)."""
    cands = sorted({0.0, 1.0, *(round(s.score, 6) for s in sets.live + sets.attack
                                 if s.found and s.verdict is not None)})
    grid = sorted({*cands, *((a + b) / 2 for a, b in itertools.pairwise(cands))})
    feasible = [(t, rates(sets, t)) for t in grid if rates(sets, t)["bpcer"] <= target_bpcer]
    if not feasible:
        raise InputError(f"no threshold keeps BPCER within {target_bpcer:g} on this set")
    best = min(r["apcer"] for _, r in feasible)
    lo = min(t for t, r in feasible if r["apcer"] <= best)
    hi = max(t for t, _ in feasible)
    thr = round((lo + hi) / 2, 4)
    r = rates(sets, thr)
    return {"threshold": thr, "lo": lo, "hi": hi, **r}


def report(sets: ScoredSets) -> dict[str, Any]:
    """The ``--json`` result (see the CLI), plus details."""
    r = rates(sets)
    kinds = sorted({s.presentation.kind for s in sets.attack})
    judged = [s.verdict.ms for s in sets.live + sets.attack if s.verdict is not None]
    cues: dict[str, dict[str, int]] = {}
    for s in sets.live + sets.attack:
        for c in s.cues:
            cues.setdefault(s.presentation.kind, {}).setdefault(c, 0)
            cues[s.presentation.kind][c] += 1
    return {
        "apcer": r["apcer"],
        "bpcer": r["bpcer"],
        "n_live": len(sets.live),
        "n_attack": len(sets.attack),
        "per_kind": r["per_kind"],
        "level": sets.level,
        "operating_point": None if not np.isfinite(sets.threshold) else sets.threshold,
        "n_per_kind": {k: sum(s.presentation.kind == k for s in sets.attack) for k in kinds},
        "no_face": {"live": sum(not s.found for s in sets.live),
                    "attack": sum(not s.found for s in sets.attack)},
        "cues": cues,
        "judge_ms_median": round(float(np.median(judged)), 2) if judged else None,
        **({} if sets.replay is None else {
            "bpcer_scope": "passive stage (recorded live frames cannot answer a prompt)",
            "challenge": challenge_summary(sets)}),
    }


def challenge_summary(sets: ScoredSets) -> dict[str, Any]:
    """At ``active``: how the replay was drawn, and per attack kind how many presentations
    met the challenge (passed the passive stage), how many passed it, and why the rest
    failed."""
    assert sets.replay is not None
    per_kind: dict[str, dict[str, Any]] = {}
    for s in sets.attack:
        if s.challenge is None:
            continue
        d = per_kind.setdefault(s.presentation.kind, {"met": 0, "passed": 0, "failed": {}})
        d["met"] += 1
        if s.challenge["state"] == State.PASSED.value:
            d["passed"] += 1
        else:
            why = str(s.challenge["reason"]).split(" (")[0]
            d["failed"][why] = d["failed"].get(why, 0) + 1
    r = sets.replay
    return {"seed": r.seed, "fps": r.fps, "seconds": r.seconds, "kinds": r.kinds,
            "per_kind": per_kind}


def run(live: Path, attack: Path, cfg: Config | None = None, level: str | None = None,
        seed: int = 0, fps: float = 15.0) -> dict[str, Any]:
    return report(score_sets(live, attack, cfg, level, seed=seed, fps=fps))


def format_report(res: dict[str, Any]) -> str:
    def pct(x: float) -> str:
        return "   -  " if x != x else f"{100 * x:5.1f} %"

    op = res["operating_point"]
    lines = [
        f"liveness level {res['level']}, operating point "
        f"{'-' if op is None else f'{op:.4f}'}",
        f"live presentations {res['n_live']} (no face in {res['no_face']['live']}), "
        f"attack presentations {res['n_attack']} (no face in {res['no_face']['attack']})",
        f"BPCER (live rejected)      {pct(res['bpcer'])}",
        f"APCER (worst attack kind)  {pct(res['apcer'])}",
    ]
    for kind, a in res["per_kind"].items():
        cues = res["cues"].get(kind, {})
        extra = ", ".join(f"{c} {n}" for c, n in sorted(cues.items()))
        lines.append(f"  {kind:<22} {pct(a)}  of {res['n_per_kind'][kind]}"
                     + (f"  (deny cues: {extra})" if extra else ""))
    if "challenge" in res:
        ch = res["challenge"]
        lines.append(f"BPCER above is the passive stage's (recorded live frames cannot answer "
                     f"a prompt); challenge on the attacks: seed {ch['seed']}, "
                     f"{ch['fps']:g} fps")
        for kind, d in ch["per_kind"].items():
            why = ", ".join(f"{w} {n}" for w, n in sorted(d["failed"].items()))
            lines.append(f"  {kind:<22} {d['passed']} of {d['met']} passed the challenge"
                         + (f"  (failed: {why})" if why else ""))
    if res.get("judge_ms_median") is not None:
        lines.append(f"liveness judge: {res['judge_ms_median']:.1f} ms median per attempt")
    return "\n".join(lines)
