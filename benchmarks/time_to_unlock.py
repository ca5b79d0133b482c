"""Time to unlock and the watcher's idle cost, on D-Bus lock stand-ins over a real private bus.

    python benchmarks/time_to_unlock.py [--runs 5] [--backend freedesktop] [--idle 10]
                                        [--out benchmarks/results]

Setup: a private ``dbus-daemon`` and a stand-in screen locker (``tests/unlock/
fake_screensaver.py``; a second bus as the "system bus" for ``--backend logind``); alice is
enrolled from the first half of the female webcam clip (../shared/datasets/clips, static
key, temp dir); the watcher's attempts read the second half as an image folder (its first
frames show her). The watcher (:class:`faceunlock.unlock.watcher.Watcher` with
:class:`~faceunlock.unlock.watcher.AuthAttempt`, models loaded beforehand as ``faceunlock
watch`` does) runs in a thread of this process.

Reported:
  * time to unlock, per run and median: the stand-in is told to lock (it emits the lock
    signal) -> the watcher's unlock call has been answered; also lock -> attempt started;
  * idle cost while the session is unlocked: CPU % of this process over ``--idle`` seconds
    (``/proc/self/stat`` utime + stime; the main thread only sleeps), RSS (``/proc/self/
    status`` VmRSS) and peak RSS (``resource``).
Writes ``time_to_unlock.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CLIPS = Path(os.environ.get("FACEUNLOCK_SHARED", REPO.parent / "shared")) / "datasets" / "clips"
FEMALE = "head-pose-face-detection-female.gif"
SS = {"freedesktop": "org.freedesktop.ScreenSaver", "gnome": "org.gnome.ScreenSaver"}


def standins() -> ModuleType:
    """The D-Bus stand-ins the tests use (tests/unlock/fake_screensaver.py)."""
    sys.path.insert(0, str(REPO / "tests" / "unlock"))
    import fake_screensaver

    return fake_screensaver


def cpu_seconds() -> float:
    """utime + stime of this process from /proc/self/stat."""
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def enrol(root: Path) -> tuple[Any, Path, Any]:
    import cv2

    from faceunlock.config import Config, config_set
    from faceunlock.engine import service
    from faceunlock.engine.sources import ImageFolderSource, VideoFileSource
    from faceunlock.engine.templates import StaticKeyProvider, TemplateStore

    cfg = Config()
    for k, v in (("detector.min_face", "50"), ("detector.max_face", "160")):
        cfg = config_set(cfg, k, v)
    with VideoFileSource(CLIPS / FEMALE) as src:
        frames = [f.image for f in src]
    half = len(frames) // 2
    dirs = {}
    for name, part in (("enrol", frames[:half]), ("probe", frames[half:])):
        d = root / name
        d.mkdir()
        for i, im in enumerate(part):
            cv2.imwrite(str(d / f"{i:04d}.png"), cv2.cvtColor(im, cv2.COLOR_RGB2BGR))
        dirs[name] = d
    store = TemplateStore(root / "templates", StaticKeyProvider(os.urandom(32)))
    service.enrol(store, "alice", cfg, ImageFolderSource(dirs["enrol"]))
    return store, dirs["probe"], cfg


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--backend", choices=["freedesktop", "gnome", "logind"], default="freedesktop")
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of idle measurement")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    a = ap.parse_args()
    if shutil.which("dbus-daemon") is None:
        sys.exit("dbus-daemon is not installed (Debian: apt-get install dbus)")
    if not (CLIPS / FEMALE).is_file():
        sys.exit(f"{CLIPS / FEMALE} not found (../shared)")

    from faceunlock.engine import service
    from faceunlock.unlock.lockstate import LogindBackend, ScreenSaverBackend
    from faceunlock.unlock.watcher import AuthAttempt, Watcher, WatcherEvent, WatcherState

    fs = standins()
    root = Path(tempfile.mkdtemp(prefix="fu-ttu-"))
    bus = fs.start_bus(root, "bus")
    try:
        store, probe, cfg = enrol(root)
        service.pipeline_for(cfg)  # loaded before the first lock, as `faceunlock watch` does
        fs.start_standin(bus, a.backend)
        backend = (
            LogindBackend(bus.address)
            if a.backend == "logind"
            else ScreenSaverBackend(SS[a.backend], bus.address)
        )
        attempt = AuthAttempt(store, "alice", cfg, str(probe), state_dir=root / "state")
        events: list[WatcherEvent] = []
        watcher = Watcher(backend, attempt, lid=lambda: None, on_event=events.append)
        thread = threading.Thread(target=watcher.run, daemon=True)
        thread.start()

        def wait_for(state: WatcherState, after: int) -> WatcherEvent:
            fs.wait_until(lambda: any(e.state == state for e in events[after:]), state.value, 60)
            return next(e for e in events[after:] if e.state == state)

        wait_for(WatcherState.IDLE, 0)
        runs = []
        for i in range(a.runs):
            n = len(events)
            t0 = time.monotonic()
            fs.control(bus.address, a.backend, "Lock")
            started = wait_for(WatcherState.AUTHENTICATING, n)
            unlocked = wait_for(WatcherState.UNLOCKED, n)
            frames = len(attempt.result.frames) if attempt.result is not None else 0
            runs.append(
                {
                    "run": i + 1,
                    "lock_to_attempt_ms": round((started.time - t0) * 1e3, 1),
                    "lock_to_unlock_ms": round((unlocked.time - t0) * 1e3, 1),
                    "frames": frames,
                }
            )
            print(json.dumps(runs[-1]), file=sys.stderr)
            wait_for(WatcherState.IDLE, n)
        unlock_calls = [c for c in fs.calls(bus.address, a.backend) if c[0] != "GetActive"]

        time.sleep(0.5)  # settle: the watcher is blocked in wait_event
        c0, w0 = cpu_seconds(), time.monotonic()
        time.sleep(a.idle)
        c1, w1 = cpu_seconds(), time.monotonic()
        idle_events = [e for e in events if e.time >= w0]
        watcher.stop()
        thread.join(5)
        backend.close()
    finally:
        bus.close()
        shutil.rmtree(root, ignore_errors=True)

    ms = [r["lock_to_unlock_ms"] for r in runs]
    result = {
        "backend": a.backend,
        "runs": runs,
        "lock_to_unlock_ms_median": statistics.median(ms),
        "lock_to_unlock_ms_max": max(ms),
        "lock_to_attempt_ms_median": statistics.median(r["lock_to_attempt_ms"] for r in runs),
        "unlock_calls": len([c for c in unlock_calls if c[0] in ("SetActive", "Unlock")]),
        "idle_seconds": round(w1 - w0, 2),
        "idle_cpu_percent": round(100 * (c1 - c0) / (w1 - w0), 3),
        "idle_events": len(idle_events),
        "rss_mb": round(rss_mb(), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cpu_count": os.cpu_count(),
    }
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "time_to_unlock.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
