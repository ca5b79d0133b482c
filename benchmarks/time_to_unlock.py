"""Time to unlock and the watcher's idle cost, on D-Bus lock stand-ins over a real private bus,
and against a real GNOME Shell lock screen.

    python benchmarks/time_to_unlock.py [--runs 5] [--backend freedesktop] [--idle 10]
                                        [--liveness LEVEL] [--out benchmarks/results]
    python benchmarks/time_to_unlock.py --backend gnome-shell [--logind mock|real] [--runs 5]

``--backend gnome-shell``: a real headless GNOME Shell 43 (tests/fakes/real_shell.py: Debian's
``gnome-shell`` and ``gjs``, root, logind from dbusmock or the real systemd-logind); the
watcher runs in this process on the backend ``faceunlock watch`` picks there (``auto``: the
shell's ``org.gnome.Shell.ScreenShield``, unlocking through logind). Each run calls
``org.gnome.ScreenSaver.Lock`` and times, from that call: the attempt's start, its first frame
with a face (``on_frame``), the shell's own ``ActiveChanged(false)`` (received by a separate
connection; ``GetActive`` is then checked false) and the watcher's confirmed ``unlocked``
event. Writes ``time_to_unlock_gnome_shell_<logind>.json``.

Setup: a private ``dbus-daemon`` and a stand-in screen locker (``tests/fakes/
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
    status`` VmRSS) and peak RSS (``resource``). Enrolment runs in a spawned child, so this
    process holds what ``faceunlock watch`` holds: the watcher, its models and the bus;
  * ``faceunlock-auth`` exec -> exit with the system template and the probe folder as the
    camera, as pam_exec runs it: once cold (models and the numpy/OpenCV/onnxruntime/
    cryptography libraries evicted from the page cache with posix_fadvise), then ``--runs``
    times warm.
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
#: ``liveness.level`` of the attempts (``--liveness``; None: the config's default)
LIVENESS: str | None = None
SS = {"freedesktop": "org.freedesktop.ScreenSaver", "gnome": "org.gnome.ScreenSaver"}


def _test_helpers_on_path() -> None:
    """tests/fakes holds the D-Bus stand-ins and the clip material the tests use; it is
    imported as the package ``tests.fakes`` from the repository root."""
    path = str(REPO)
    if path not in sys.path:
        sys.path.insert(0, path)


def standins() -> ModuleType:
    """The D-Bus stand-ins the tests use (tests/fakes/fake_screensaver.py)."""
    _test_helpers_on_path()
    from tests.fakes import fake_screensaver

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


def _enrol_child(root: str, key: bytes) -> None:
    """Runs in a spawned process, so the measuring process holds only the watcher: alice
    enrolled from the first half of the clip into a user store (static ``key``) and into a
    system store (for faceunlock-auth); the second half written as the probe folder."""
    _test_helpers_on_path()
    from faceunlock.app import service
    from faceunlock.engine.sources import ImageFolderSource
    from faceunlock.engine.templates import StaticKeyProvider, SystemTemplateStore, TemplateStore
    from tests.fakes.clip_material import clip_frames, png_folder

    base = Path(root)
    cfg = bench_config()
    frames = clip_frames(CLIPS / FEMALE)
    half = len(frames) // 2
    enrol_dir = png_folder(base / "enrol", frames[:half])
    png_folder(base / "probe", frames[half:])
    # unguided, as the clip tests enrol: the clip was not filmed to the wizard's prompts
    params = service.enrol_params(cfg, guided=False)
    service.enrol(TemplateStore(base / "templates", StaticKeyProvider(key)), "alice", cfg,
                  ImageFolderSource(enrol_dir), params=params)
    service.enrol(SystemTemplateStore(base / "var"), "alice", cfg, ImageFolderSource(enrol_dir),
                  params=params)


def bench_config() -> Any:
    """The clips' detector sizes (their faces are 57-70 px), as the tests use them."""
    _test_helpers_on_path()
    from tests.fakes.clip_material import clip_config

    return clip_config(**({"liveness.level": LIVENESS} if LIVENESS else {}))


def enrol(root: Path) -> tuple[Any, Path, Any]:
    import multiprocessing

    from faceunlock.engine.templates import StaticKeyProvider, TemplateStore

    key = os.urandom(32)
    child = multiprocessing.get_context("spawn").Process(target=_enrol_child,
                                                         args=(str(root), key))
    child.start()
    child.join()
    if child.exitcode != 0:
        sys.exit(f"enrolment failed (exit {child.exitcode})")
    store = TemplateStore(root / "templates", StaticKeyProvider(key))
    return store, root / "probe", bench_config()


def _evict(paths: list[Path]) -> int:
    """Drop these files' clean pages from the page cache (posix_fadvise DONTNEED; no root
    needed): the next read comes from disk, as after a reboot. Returns bytes advised."""
    total = 0
    for p in paths:
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            total += os.fstat(fd).st_size
        finally:
            os.close(fd)
    return total


def heavy_files() -> list[Path]:
    """The model files and the shared libraries faceunlock-auth loads on a face attempt."""
    import importlib.util

    from faceunlock.paths import models_dir

    files = [p for p in models_dir().iterdir() if p.is_file()]
    for mod in ("numpy", "cv2", "onnxruntime", "cryptography"):
        spec = importlib.util.find_spec(mod)
        if spec and spec.submodule_search_locations:
            for loc in spec.submodule_search_locations:
                files += [p for p in Path(loc).rglob("*") if p.suffix == ".so" or ".so." in p.name]
    return files


def time_auth(root: Path, runs: int) -> dict[str, Any]:
    """``faceunlock-auth`` exec -> exit, as pam_exec runs it: first with the models and
    libraries evicted from the page cache (cold), then ``runs`` times warm."""
    import subprocess

    from faceunlock.config import config_set, save_config

    helper = Path(sys.executable).parent / "faceunlock-auth"
    cfg = bench_config()
    cfg = config_set(cfg, "camera.source", str(root / "probe"))
    conf = save_config(cfg, root / "config.toml")
    # a console tty: local for the helper's session check even without logind
    env = {"PAM_TYPE": "auth", "PAM_USER": "alice", "PAM_SERVICE": "bench", "PAM_TTY": "tty1",
           "PATH": os.environ.get("PATH", "")}

    def once() -> dict[str, Any]:
        t0 = time.monotonic()
        p = subprocess.run([str(helper), "--config", str(conf), "--system-dir", str(root / "var")],
                           env=env, capture_output=True, text=True, timeout=60, check=False)
        return {"ms": round((time.monotonic() - t0) * 1e3, 1), "exit": p.returncode,
                "greeter": p.stdout.strip(), "log": p.stderr.strip()}

    evicted = _evict(heavy_files())
    cold = once()
    warm = [once() for _ in range(runs)]
    return {"cold": cold, "evicted_mb": round(evicted / 1e6, 1), "warm": warm,
            "warm_ms_median": statistics.median(w["ms"] for w in warm),
            "all_ok": cold["exit"] == 0 and all(w["exit"] == 0 for w in warm)}


def shell_runs(a: argparse.Namespace) -> dict[str, Any]:
    """``--backend gnome-shell``: lock the real shell, time until it is unlocked (see the
    module docstring)."""
    from jeepney import MatchRule, MessageType
    from jeepney.bus_messages import message_bus
    from jeepney.io.blocking import open_dbus_connection

    from faceunlock.app import service
    from faceunlock.unlock.lockstate import detect_backend
    from faceunlock.unlock.watcher import AuthAttempt, Watcher, WatcherEvent, WatcherState

    _test_helpers_on_path()
    from tests.fakes import real_shell

    reason = real_shell.missing(real_logind=a.logind == "real")
    if reason:
        sys.exit(reason)
    fs = standins()
    root = Path(tempfile.mkdtemp(prefix="fu-ttu-"))
    desktop = real_shell.Desktop(a.logind)
    try:
        store, probe, cfg = enrol(root)
        service.pipeline_for(cfg)
        backend = detect_backend("auto", session_bus=desktop.session_bus,
                                 system_bus=desktop.system_bus, session_id=real_shell.SESSION_ID)
        faces: list[float] = []
        attempt = AuthAttempt(store, "alice", cfg, str(probe), state_dir=root / "state",
                              on_frame=lambda fr: faces.append(time.monotonic()) if fr.faces
                              else None)
        events: list[WatcherEvent] = []
        watcher = Watcher(backend, attempt, lid=lambda: None, on_event=events.append)
        thread = threading.Thread(target=watcher.run, daemon=True)
        thread.start()
        observer = open_dbus_connection(desktop.session_bus)
        rule = MatchRule(type="signal", sender=real_shell.SCREENSHIELD,
                         interface=real_shell.SCREENSAVER_IFACE, member="ActiveChanged")
        observer.send_and_get_reply(message_bus.AddMatch(rule), timeout=10)

        def wait_for(state: WatcherState, after: int) -> WatcherEvent:
            fs.wait_until(lambda: any(e.state == state for e in events[after:]), state.value, 90)
            return next(e for e in events[after:] if e.state == state)

        def active_changed(value: bool, deadline: float) -> float:
            while True:
                msg = observer.receive(timeout=max(0.0, deadline - time.monotonic()))
                if (msg.header.message_type == MessageType.signal
                        and msg.body and bool(msg.body[0]) is value):
                    return time.monotonic()

        wait_for(WatcherState.IDLE, 0)
        runs = []
        for i in range(a.runs):
            desktop.wait_locked(False)
            faces.clear()
            n = len(events)
            t0 = time.monotonic()
            desktop.lock_gnome()
            active_changed(True, t0 + 60)
            t_off = active_changed(False, t0 + 90)
            still_locked = desktop.shell_locked()
            unlocked = wait_for(WatcherState.UNLOCKED, n)
            started = next(e for e in events[n:] if e.state == WatcherState.AUTHENTICATING)
            first_face = faces[0] if faces else float("nan")
            runs.append({
                "run": i + 1,
                "lock_to_attempt_ms": round((started.time - t0) * 1e3, 1),
                "lock_to_first_face_ms": round((first_face - t0) * 1e3, 1),
                "lock_to_get_active_false_ms": round((t_off - t0) * 1e3, 1),
                "first_face_to_get_active_false_ms": round((t_off - first_face) * 1e3, 1),
                "lock_to_watcher_confirmed_ms": round((unlocked.time - t0) * 1e3, 1),
                "get_active_after": still_locked,
                "unlocked_via": unlocked.detail,
            })
            print(json.dumps(runs[-1]), file=sys.stderr)
            wait_for(WatcherState.IDLE, n)
        watcher.stop()
        thread.join(5)
        backend.close()
        observer.close()
    finally:
        desktop.close()
        desktop.remove()
        shutil.rmtree(root, ignore_errors=True)
    med = statistics.median
    return {
        "backend": "gnome-shell",
        "shell": subprocess_output(["gnome-shell", "--version"]),
        "logind": a.logind,
        "runs": runs,
        "lock_to_get_active_false_ms_median": med(r["lock_to_get_active_false_ms"]
                                                  for r in runs),
        "first_face_to_get_active_false_ms_median": med(
            r["first_face_to_get_active_false_ms"] for r in runs),
        "first_face_to_get_active_false_ms_max": max(
            r["first_face_to_get_active_false_ms"] for r in runs),
        "lock_to_first_face_ms_median": med(r["lock_to_first_face_ms"] for r in runs),
        "all_unlocked": all(r["get_active_after"] is False for r in runs),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
    }


def subprocess_output(cmd: list[str]) -> str:
    import subprocess

    return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--backend", choices=["freedesktop", "gnome", "logind", "gnome-shell"],
                    default="freedesktop")
    ap.add_argument("--logind", choices=["mock", "real"], default="mock",
                    help="gnome-shell: dbusmock's logind or the real systemd-logind")
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of idle measurement")
    # no "active": the watcher does not try at active (it cannot show the head-turn prompt
    # on a locked screen; docs/liveness.md), so there is no lock -> unlock time to measure
    ap.add_argument("--liveness", choices=["off", "passive"], default=None,
                    help="liveness.level of the attempts (default: the config's default)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    a = ap.parse_args()
    global LIVENESS
    LIVENESS = a.liveness
    if a.backend == "gnome-shell":
        if not (CLIPS / FEMALE).is_file():
            sys.exit(f"{CLIPS / FEMALE} not found (../shared)")
        shell = shell_runs(a)
        a.out.mkdir(parents=True, exist_ok=True)
        out = a.out / f"time_to_unlock_gnome_shell_{a.logind}.json"
        out.write_text(json.dumps(shell, indent=2) + "\n")
        print(json.dumps(shell, indent=2))
        return 0
    if shutil.which("dbus-daemon") is None:
        sys.exit("dbus-daemon is not installed (Debian: apt-get install dbus)")
    if not (CLIPS / FEMALE).is_file():
        sys.exit(f"{CLIPS / FEMALE} not found (../shared)")

    from faceunlock.app import service
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
        idle_rss = rss_mb()
        watcher.stop()
        thread.join(5)
        backend.close()
        auth = time_auth(root, a.runs)
        print(json.dumps({"auth_cold_ms": auth["cold"]["ms"],
                          "auth_warm_ms_median": auth["warm_ms_median"]}), file=sys.stderr)
    finally:
        bus.close()
        shutil.rmtree(root, ignore_errors=True)

    ms = [r["lock_to_unlock_ms"] for r in runs]
    result = {
        "backend": a.backend,
        "liveness": bench_config().liveness.level,
        "runs": runs,
        "lock_to_unlock_ms_median": statistics.median(ms),
        "lock_to_unlock_ms_max": max(ms),
        "lock_to_attempt_ms_median": statistics.median(r["lock_to_attempt_ms"] for r in runs),
        "unlock_calls": len([c for c in unlock_calls if c[0] in ("SetActive", "Unlock")]),
        "idle_seconds": round(w1 - w0, 2),
        "idle_cpu_percent": round(100 * (c1 - c0) / (w1 - w0), 3),
        "idle_events": len(idle_events),
        "idle_rss_mb": round(idle_rss, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cpu_count": os.cpu_count(),
        "faceunlock_auth": auth,
    }
    a.out.mkdir(parents=True, exist_ok=True)
    name = "time_to_unlock.json" if not a.liveness else f"time_to_unlock-liveness-{a.liveness}.json"
    (a.out / name).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
