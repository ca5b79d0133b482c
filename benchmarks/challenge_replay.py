"""The active challenge on replayed clips: how often a replay passes, and what it costs.

    python benchmarks/challenge_replay.py [--draws 200] [--kinds turn,blink] [--out DIR]

The woman is enrolled from the first half of her clip (tests.fakes.clip_material). Replays,
each played as a camera at the clip's own 12.5 fps: her clip's second half (her head turns to
her right about 0.4 s after the match) and the two-person clip (she holds still beside the
man). Each replay runs ``--draws`` attempts at ``liveness.level = active`` through
:func:`faceunlock.app.service.authenticate_user`, draw ``i`` from ``random.Random(i)``
among ``--kinds`` (as ``liveness.challenges``).
Reported per replay: the pass rate (a replay passing is an attack accepted), the reasons for
failing, and the cost: the challenge's own milliseconds per frame (following the face, the
yaw), the frames and clip seconds from the match to the decision, and the pipeline's
milliseconds on those frames; and the same per kind of challenge drawn (a blink's
milliseconds include the face mesh and the eye aspect ratio on every challenge frame).
Writes ``challenge_replay.json`` into ``--out`` (``challenge_replay-KINDS.json`` with
``--kinds`` other than the default).
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
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CLIPS = Path(os.environ.get("FACEUNLOCK_SHARED", REPO.parent / "shared")) / "datasets" / "clips"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--kinds", default="turn,blink", help="turn, blink or turn,blink")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    a = ap.parse_args(argv)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    tmp = Path(tempfile.mkdtemp(prefix="challenge-replay-"))
    for k in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        os.environ[k] = str(tmp / k.lower())
    from faceunlock.app import service
    from faceunlock.engine.challenge import draw_challenge, parse_kinds
    from faceunlock.engine.sources import ImageFolderSource
    from faceunlock.errors import AuthStatus
    from tests.fakes.clip_material import BOTH, EnrolledClips, clip_config, clip_frames, png_folder

    owner = EnrolledClips(tmp / "owner", CLIPS)
    both = png_folder(tmp / "both", clip_frames(CLIPS / BOTH))
    cfg = clip_config(**{"liveness.level": "active", "auth.timeout": "30",
                         "auth.max_failures": "100"})
    pipe = service.pipeline_for(cfg)
    kinds = parse_kinds(a.kinds)
    out: dict[str, Any] = {"draws": a.draws, "fps": 12.5, "kinds": list(kinds), "replays": {}}
    for name, folder in (("her clip, second half (turns to her right)", owner.genuine),
                         ("two-person clip (she holds still)", both)):
        passed, reasons = 0, collections.Counter[str]()
        feed_ms: list[float] = []
        pipe_ms: list[float] = []
        frames_after: list[int] = []
        seconds_after: list[float] = []
        pass_seconds: list[float] = []
        per_kind: dict[str, dict[str, Any]] = {}
        for i in range(a.draws):
            res = service.authenticate_user(
                owner.store, "alice", cfg, ImageFolderSource(folder, fps=12.5), pipe=pipe,
                on_prompt=lambda w: None,
                challenge=lambda i=i: draw_challenge(  # type: ignore[misc]
                    random.Random(i), kinds=kinds),
            )
            service.failure_counter(cfg, "alice").record(True)
            run = res.challenge
            if run is None:
                reasons[f"no challenge ({res.status.name})"] += 1
                continue
            k = per_kind.setdefault(run.challenge.kind, {"draws": 0, "passed": 0, "ms": []})
            k["draws"] += 1
            k["ms"] += run.ms
            if res.status == AuthStatus.OK:
                k["passed"] += 1
                passed += 1
                pass_seconds.append(run.frames / 12.5)
            else:
                reasons[run.reason.split(" (")[0]] += 1
            feed_ms += run.ms
            n = run.frames
            frames_after.append(n)
            seconds_after.append(n / 12.5)
            pipe_ms += [f.ms for f in res.frames[-n:]] if n else []
        rate = passed / a.draws
        out["replays"][name] = {
            "pass_rate": round(rate, 4),
            "passed": passed,
            "fail_reasons": dict(reasons.most_common()),
            "challenge_ms_per_frame_median": round(statistics.median(feed_ms), 3),
            "challenge_ms_per_frame_p95": round(sorted(feed_ms)[int(0.95 * len(feed_ms))], 3),
            "pipeline_ms_per_challenge_frame_median": round(statistics.median(pipe_ms), 2),
            "frames_after_match_median": statistics.median(frames_after),
            "clip_seconds_after_match_median": round(statistics.median(seconds_after), 2),
            "clip_seconds_match_to_pass_median": round(statistics.median(pass_seconds), 2)
            if pass_seconds else None,
            "per_kind": {
                kind: {"draws": k["draws"], "passed": k["passed"],
                       "challenge_ms_per_frame_median": round(statistics.median(k["ms"]), 3)
                       if k["ms"] else None,
                       "challenge_ms_per_frame_p95": round(
                           sorted(k["ms"])[int(0.95 * len(k["ms"]))], 3) if k["ms"] else None}
                for kind, k in sorted(per_kind.items())},
        }
        print(name, json.dumps(out["replays"][name]))
    a.out.mkdir(parents=True, exist_ok=True)
    name = "challenge_replay.json" if a.kinds == "turn,blink" \
        else f"challenge_replay-{a.kinds.replace(',', '-')}.json"
    (a.out / name).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
