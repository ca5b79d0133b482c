"""Owner false rejects at ``liveness.level = active``, with a SIMULATED responsive owner.

    python benchmarks/active_frr.py [--attempts 100] [--fps 12.5|30] [--reaction 0.5,1.2]
        [--closed-s 0.16] [--blink-gap 0.3,0.6] [--controls 10] [--out benchmarks/results]

No real user answered a prompt here: the shared clips are recordings. The "user" is
:class:`tests.fakes.responsive_owner.SimulatedAttempt`, a camera that shows real clip frames
chosen from the challenge actually drawn and the moment its prompt was actually shown:
frontal frames until the prompt plus a reaction time (drawn per attempt, uniform
``--reaction`` s: an assumption), then the woman's own turn frames towards the asked side at
her clip's speed, held; or the man's frontal frames with the eyes painted shut twice
(2 frames at 12.5 fps each, the second closing 0.3-0.6 s after the first).

Owners: the woman (enrolled from the first half of her clip, answers ``liveness.challenges =
turn``: left and right) and the man (enrolled from the first half of his, answers
``blink``); the frames shown are their clips' second halves. Attempt ``i`` of each owner:
the challenge from ``random.Random(i)`` (draw_challenge), the user's side (reaction, blink
gap, where the frontal loop starts) from ``random.Random(1_000_000 + i)``. Each runs the
real :func:`faceunlock.engine.auth.authenticate` (real models, the clips' detector sizes,
the config's k-of-n, the default 4 s window) with the attempt's clock on the simulated
camera's timestamps (as if in real time). Reported per owner: FRR at active, per kind, the
reasons, the seconds from the match to the decision (median, p90); the same users on the
same frames at passive (FRR, the control); and ``--controls`` attempts of the same user who
does not respond at active (all should fail). Writes ``active_frr.json`` into ``--out``
(``active_frr-30fps.json``, ``active_frr-closed0.08.json`` ... when an option is not its
default).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CLIPS = Path(os.environ.get("FACEUNLOCK_SHARED", REPO.parent / "shared")) / "datasets" / "clips"


def _p90(xs: list[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(0.9 * len(s)))]


def _pair(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI seconds, got {text!r}") from None
    if not 0 < lo <= hi:
        raise argparse.ArgumentTypeError(f"need 0 < LO <= HI, got {text!r}")
    return lo, hi


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attempts", type=int, default=100, help="per owner")
    ap.add_argument("--fps", type=float, default=12.5,
                    help="the simulated camera's rate (12.5: the clips'; 30: repeated frames "
                         "with tiny noise)")
    ap.add_argument("--reaction", type=_pair, default=(0.5, 1.2),
                    help="reaction time after the prompt, uniform LO,HI seconds")
    ap.add_argument("--closed-s", type=float, default=0.16,
                    help="seconds the eyes stay shut per blink (0.16: 2 frames at 12.5 fps)")
    ap.add_argument("--blink-gap", type=_pair, default=(0.3, 0.6),
                    help="the second blink closes LO-HI s after the first (uniform)")
    ap.add_argument("--controls", type=int, default=10,
                    help="attempts per owner of the user who does not respond")
    ap.add_argument("--owners", default="woman,man", help="woman (turns), man (blinks) or both")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    a = ap.parse_args(argv)
    if a.attempts < 1 or a.controls < 0 or not a.fps > 0 or not a.closed_s > 0:
        ap.error("--attempts must be >= 1, --controls >= 0, --fps and --closed-s > 0")
    names = [w.strip() for w in a.owners.split(",") if w.strip()]
    if not names or any(w not in ("woman", "man") for w in names):
        ap.error(f"--owners: woman and/or man, got {a.owners!r}")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    tmp = Path(tempfile.mkdtemp(prefix="active-frr-"))
    for k in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        os.environ[k] = str(tmp / k.lower())
    from faceunlock.app import service
    from faceunlock.engine.auth import AuthParams, authenticate
    from faceunlock.engine.challenge import (
        Blink,
        Challenge,
        HeadTurn,
        draw_challenge,
        parse_kinds,
    )
    from faceunlock.errors import AuthStatus
    from tests.fakes import responsive_owner as R
    from tests.fakes.clip_material import clip_config

    cfg = clip_config(**{"liveness.level": "active"})
    pipe = service.pipeline_for(cfg)
    params = AuthParams(timeout=cfg.auth.timeout, k=cfg.auth.k, n=cfg.auth.n,
                        dark_level=cfg.auth.dark_level, dark_fraction=cfg.auth.dark_fraction)
    stages = {lvl: service.liveness_for(cfg, pipe, lvl) for lvl in ("passive", "active")}
    seconds = cfg.liveness.challenge_seconds

    def kind_of(ch: Challenge) -> str:
        return f"turn-{ch.direction}" if isinstance(ch, HeadTurn) else ch.kind

    def closure_depth(blink: Blink, sim: Any, match_t: float) -> list[float | None]:
        """Per simulated blink, the lowest EAR of its painted frames over the open level as
        the challenge had it then (the 90th percentile of the readings so far): below
        mesh.BLINK_DIP (0.65) the closure counted; None: no reading (or after the decision)."""
        t0 = match_t + blink.delay
        seen: list[float] = []
        depth: list[float | None] = [None] * len(sim.blink_onsets())
        for dt, ear in blink.trace:
            if ear is None:
                continue
            seen.append(ear)
            for b, on in enumerate(sim.blink_onsets()):
                if on <= dt + t0 + 1e-9 < on + sim.closed_s:
                    r = ear / float(np.percentile(seen, 90))
                    old = depth[b]
                    depth[b] = round(r, 3) if old is None else min(old, round(r, 3))
        return depth

    def attempt(owner: Any, i: int, level: str, respond: bool = True) -> dict[str, Any]:
        sim = R.SimulatedAttempt(owner, random.Random(1_000_000 + i), fps=a.fps,
                                 respond=respond, reaction=a.reaction,
                                 blink_gap=a.blink_gap, closed_s=a.closed_s)
        kinds = parse_kinds(owner.kinds)
        res = authenticate(
            pipe, owner.matcher, owner.threshold, sim.frames(), params, clock=sim.clock,
            liveness=stages[level], on_prompt=sim.on_prompt,
            challenge=sim.wrap(lambda: draw_challenge(random.Random(i), seconds, kinds)))
        run = res.challenge
        ok = res.status == AuthStatus.OK
        out: dict[str, Any] = {"ok": ok, "status": res.status.name,
                               "frames": len(res.frames),
                               "pipeline_ms": [f.ms for f in res.frames]}
        if run is None:
            out["reason"] = "" if ok else (
                "refused by the passive checks" if res.status == AuthStatus.PRESENTATION_ATTACK
                else f"no match ({res.status.name})")
            return out
        if isinstance(run.challenge, Blink) and sim.prompt_t is not None:
            out["closure_depth"] = closure_depth(run.challenge, sim, run.t)
        out.update(kind=kind_of(run.challenge), reason=run.reason,
                   decision_s=res.challenge_elapsed, delay_s=run.challenge.delay,
                   react_s=sim.react_s, prompted=sim.prompt_t is not None)
        return out

    owners = [{"woman": R.woman, "man": R.man}[w](pipe, cfg, CLIPS) for w in names]
    result: dict[str, Any] = {
        "simulated": True, "attempts_per_owner": a.attempts, "fps": a.fps,
        "reaction_s": list(a.reaction), "blink_gap_s": list(a.blink_gap),
        "closed_s": a.closed_s, "window_s": seconds, "k": cfg.auth.k, "n": cfg.auth.n,
        "owners": {},
    }
    t_start = time.perf_counter()
    for o in owners:
        act = [attempt(o, i, "active") for i in range(a.attempts)]
        pas = [attempt(o, i, "passive") for i in range(a.attempts)]
        ctl = [attempt(o, i, "active", respond=False) for i in range(a.controls)]
        per_kind: dict[str, dict[str, Any]] = {}
        for r in act:
            pk = per_kind.setdefault(r.get("kind", "none"), {"attempts": 0, "rejected": 0})
            pk["attempts"] += 1
            pk["rejected"] += not r["ok"]
        for pk in per_kind.values():
            pk["frr"] = round(pk["rejected"] / pk["attempts"], 4)
        dec = [r["decision_s"] for r in act if r["ok"]]
        rej = [r for r in act if not r["ok"]]
        depths = [d for r in act for d in r.get("closure_depth", [])]
        blink_stats = {} if not depths else {"simulated_blinks": {
            "closures": len(depths),
            "read_below_dip": sum(d is not None and d < 0.65 for d in depths),
            "rejected_with_a_closure_read_at_or_above_dip": sum(
                any(d is None or d >= 0.65 for d in r.get("closure_depth", [])) for r in rej),
            "depth_median": statistics.median(d for d in depths if d is not None)}}
        result["owners"][o.name] = {
            "answers": o.kinds,
            "active": {
                "attempts": len(act),
                "rejected": len(rej),
                "frr": round(len(rej) / len(act), 4),
                "per_kind": dict(sorted(per_kind.items())),
                "fail_reasons": dict(collections.Counter(
                    r["reason"].split(" (")[0] for r in rej).most_common()),
                "rejected_attempts": [
                    {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()
                     if k != "pipeline_ms"} | {"i": act.index(r)} for r in rej],
                "match_to_pass_s_median": round(statistics.median(dec), 3) if dec else None,
                "match_to_pass_s_p90": round(_p90(dec), 3) if dec else None,
                "match_to_decision_s_median": round(statistics.median(
                    r["decision_s"] for r in act if "decision_s" in r), 3),
                "frames_median": statistics.median(r["frames"] for r in act),
                "pipeline_ms_median": round(statistics.median(
                    ms for r in act for ms in r["pipeline_ms"]), 2),
                **blink_stats,
            },
            "passive_control": {
                "attempts": len(pas),
                "rejected": sum(not r["ok"] for r in pas),
                "frr": round(sum(not r["ok"] for r in pas) / len(pas), 4),
                "fail_reasons": dict(collections.Counter(
                    r["reason"] for r in pas if not r["ok"]).most_common()),
            },
            "unresponsive_at_active": {
                "attempts": len(ctl),
                "passed": sum(r["ok"] for r in ctl),
                "fail_reasons": dict(collections.Counter(
                    r["reason"].split(" (")[0] for r in ctl if not r["ok"]).most_common()),
            },
        }
        print(o.name, json.dumps({k: v for k, v in result["owners"][o.name]["active"].items()
                                  if k != "rejected_attempts"}), file=sys.stderr)
    result["seconds"] = round(time.perf_counter() - t_start, 1)
    a.out.mkdir(parents=True, exist_ok=True)
    tag = "".join([
        "" if a.fps == 12.5 else f"-{a.fps:g}fps",
        "" if a.reaction == (0.5, 1.2) else f"-react{a.reaction[0]:g}-{a.reaction[1]:g}",
        "" if a.closed_s == 0.16 else f"-closed{a.closed_s:g}",
        "" if a.blink_gap == (0.3, 0.6) else f"-gap{a.blink_gap[0]:g}-{a.blink_gap[1]:g}",
        "" if names == ["woman", "man"] else "-" + "-".join(names)])
    (a.out / f"active_frr{tag}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({n: {"active_frr": v["active"]["frr"],
                          "per_kind": v["active"]["per_kind"],
                          "passive_frr": v["passive_control"]["frr"],
                          "unresponsive_passed": v["unresponsive_at_active"]["passed"]}
                      for n, v in result["owners"].items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
