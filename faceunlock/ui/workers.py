"""Background workers: read a frame source and run the engine off the GUI thread.

A worker is a ``QObject`` moved to its own ``QThread`` (see :class:`WorkerThread`). Its
``run`` slot opens the source, handles frames until the source ends or :meth:`stop` is
called, then closes the source and emits ``finished``. The camera is therefore open only
while a worker runs. Every frame produces one :class:`FramePacket` on the ``frame`` signal;
failures become one plain-language ``error`` string (then ``finished``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PyQt6.QtCore import QObject, QThread, pyqtSignal, pyqtSlot

from faceunlock.config import AuthConfig
from faceunlock.engine.auth import AuthParams, FrameResult, authenticate, score_frame
from faceunlock.engine.cohort import Matcher
from faceunlock.engine.enrolment import Capture, EnrolmentSession, EnrolParams, Feedback
from faceunlock.engine.pipeline import FacePipeline
from faceunlock.engine.quality import is_dark
from faceunlock.engine.sources import Frame, FrameSource
from faceunlock.errors import plain_message

__all__ = ["plain_message"]  # re-exported: the UI modules take it from here

Box = tuple[float, float, float, float]


def _box4(b: Any) -> tuple[float, float, float, float]:
    return (float(b[0]), float(b[1]), float(b[2]), float(b[3]))


@dataclass
class FramePacket:
    """What the GUI gets for one frame.

    image: RGB uint8 (H, W, 3); boxes: face boxes (left, top, right, bottom) in image pixels;
    dark: the frame was too dark to use; feedback: the enrolment verdict (EnrolWorker);
    distance/match/threshold: the recognition result (AuthTestWorker; distance is ``inf``
    when no face was seen); ms: processing time of the frame; capture: the anchor taken from
    this frame (EnrolWorker).
    """

    image: np.ndarray
    index: int
    boxes: list[Box] = field(default_factory=list)
    dark: bool = False
    feedback: Feedback | None = None
    distance: float | None = None
    match: bool | None = None
    threshold: float | None = None
    ms: float = 0.0
    capture: Capture | None = None

    @property
    def box(self) -> Box | None:
        """The largest face box, or None."""
        if not self.boxes:
            return None
        return max(self.boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))


class CameraWorker(QObject):
    """Open a source, run the pipeline on each frame, emit a :class:`FramePacket` per frame.

    source_factory: builds a (closed) FrameSource; pipe_factory: returns the Pipeline (called
    in the worker thread, so model loading does not freeze the GUI). min_interval: seconds
    between frames at most (throttles fast file sources so the preview stays watchable).
    """

    frame = pyqtSignal(object)
    error = pyqtSignal(str)
    finished = pyqtSignal()

    def __init__(
        self,
        source_factory: Callable[[], FrameSource],
        pipe_factory: Callable[[], FacePipeline],
        *,
        min_interval: float = 0.0,
        dark_level: int = AuthConfig.dark_level,
        dark_fraction: float = AuthConfig.dark_fraction,
    ) -> None:
        super().__init__()
        self.source_factory = source_factory
        self.pipe_factory = pipe_factory
        self.min_interval = min_interval
        self.dark_level = dark_level
        self.dark_fraction = dark_fraction
        self._stop = threading.Event()
        self.source: FrameSource | None = None
        self.frames_seen = 0

    def stop(self) -> None:
        """Ask the loop to end after the current frame (thread-safe)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @pyqtSlot()
    def run(self) -> None:
        try:
            pipe = self.pipe_factory()
            self.prepare(pipe)
            self.source = self.source_factory()
            with self.source as src:
                last = 0.0
                while not self._stop.is_set():
                    fr = src.read()
                    if fr is None:
                        break
                    wait = self.min_interval - (time.monotonic() - last)
                    if wait > 0:
                        time.sleep(wait)
                    last = time.monotonic()
                    t0 = time.perf_counter()
                    packet = self.process(pipe, fr)
                    packet.ms = (time.perf_counter() - t0) * 1000.0
                    self.frames_seen += 1
                    if self._stop.is_set():
                        break
                    self.frame.emit(packet)
                    if self.done():
                        break
        except Exception as e:  # every failure reaches the GUI as words
            self.error.emit(plain_message(e))
        finally:
            self.finished.emit()

    def prepare(self, pipe: FacePipeline) -> None:
        """Called in the worker thread once the pipeline is loaded, before the source opens."""

    def done(self) -> bool:
        """True ends the loop after the frame just emitted."""
        return False

    def is_dark(self, image: np.ndarray) -> bool:
        return bool(is_dark(image, dark_level=self.dark_level, dark_fraction=self.dark_fraction))

    def process(self, pipe: FacePipeline, fr: Frame) -> FramePacket:
        if self.is_dark(fr.image):
            return FramePacket(fr.image, fr.index, dark=True)
        obs = pipe.observe(fr.image, select="all", track=True)
        return FramePacket(fr.image, fr.index, boxes=[_box4(o.box) for o in obs])


class EnrolWorker(CameraWorker):
    """Feeds each frame to an :class:`EnrolmentSession` (built in the worker thread, once the
    pipeline is loaded); the packet carries its Feedback and, when a frame was accepted, the
    new Capture. Emits ``completed`` (and stops) once the session has all its anchors, and
    stops when the capture failed (the packet's feedback says why).

    owner_check: when adding an appearance, called with the pipeline in the worker thread
    before the capture: it verifies the owner live (raising, which becomes ``error``) and
    returns the template's Matcher and threshold, which every new anchor must then match.
    ``prompt``: the words of the owner check's active challenge (``liveness.level =
    active``), for the page to show; connect ``prompt.emit`` as the owner check's prompt."""

    completed = pyqtSignal()
    prompt = pyqtSignal(str)

    def __init__(
        self,
        source_factory: Callable[[], FrameSource],
        pipe_factory: Callable[[], FacePipeline],
        params: EnrolParams,
        *,
        min_interval: float = 0.0,
        owner_check: Callable[[FacePipeline], tuple[Matcher, float]] | None = None,
    ) -> None:
        super().__init__(source_factory, pipe_factory, min_interval=min_interval)
        self.params = params
        self.owner_check = owner_check
        self.session: EnrolmentSession | None = None

    def prepare(self, pipe: FacePipeline) -> None:
        self.session = EnrolmentSession(pipe, self.params)
        if self.owner_check is not None:
            self.session.owner, self.session.owner_threshold = self.owner_check(pipe)

    def process(self, pipe: FacePipeline, fr: Frame) -> FramePacket:
        assert self.session is not None
        fb = self.session.offer(fr)
        boxes = [_box4(fb.box)] if fb.box is not None else []
        cap = self.session.captures[-1] if fb.accepted else None
        return FramePacket(
            fr.image, fr.index, boxes=boxes, dark=fb.code == "dark", feedback=fb, capture=cap
        )

    def done(self) -> bool:
        if self.session is not None and self.session.done:
            self.completed.emit()
            return True
        return self.session is not None and bool(self.session.failure)


class AuthTestWorker(CameraWorker):
    """For "Test recognition": each frame's best distance to the anchors and the decision."""

    def __init__(
        self,
        source_factory: Callable[[], FrameSource],
        pipe_factory: Callable[[], FacePipeline],
        anchors: np.ndarray | Matcher,
        threshold: float,
        *,
        min_interval: float = 0.0,
    ) -> None:
        """``anchors``: the template's Matcher (its scale is ``threshold``'s), or bare
        anchors scored by raw distance."""
        super().__init__(source_factory, pipe_factory, min_interval=min_interval)
        self.anchors = anchors if isinstance(anchors, Matcher) else np.asarray(anchors, np.float32)
        self.threshold = float(threshold)

    def process(self, pipe: FacePipeline, fr: Frame) -> FramePacket:
        if self.is_dark(fr.image):
            return FramePacket(fr.image, fr.index, dark=True, threshold=self.threshold)
        faces, dist = score_frame(pipe, fr.image, self.anchors)
        return FramePacket(
            fr.image,
            fr.index,
            distance=dist,
            match=faces > 0 and dist <= self.threshold,
            threshold=self.threshold,
        )


class _BoxRecorder:
    """The pipeline, noting the face boxes of the frame it last observed (authentication
    reports distances, not boxes)."""

    def __init__(self, pipe: FacePipeline) -> None:
        self.pipe = pipe
        self.boxes: list[Box] = []

    def observe(self, image: np.ndarray, *args: Any, **kwargs: Any) -> list[Any]:
        obs = self.pipe.observe(image, *args, **kwargs)
        self.boxes = [_box4(o.box) for o in obs]
        return list(obs)

    def __getattr__(self, name: str) -> Any:  # reset_tracking and the rest: the pipeline's
        return getattr(self.pipe, name)


#: what one attempt needs, made from the loaded pipeline: the template's Matcher, the
#: threshold on its scale, the attempt's parameters and the liveness stage (None: off)
AttemptSetup = tuple[Matcher, float, AuthParams, Any]


class AttemptWorker(CameraWorker):
    """For the Test dialog: one attempt exactly as at the lock screen
    (:func:`~faceunlock.engine.auth.authenticate`: the same k-of-n window, timeout and
    liveness), without the failure counter (a test is not a try at unlocking). A packet per
    frame (its face boxes and score), then ``result`` with the
    :class:`~faceunlock.engine.auth.AuthResult` (not when stopped or on an error).

    ``setup(pipe)``, called in the worker thread once the pipeline is loaded, returns an
    :data:`AttemptSetup`. ``prompt`` carries the active challenge's words
    (``liveness.level = active``) the moment the attempt asks for the head turn."""

    result = pyqtSignal(object)  # AuthResult
    prompt = pyqtSignal(str)

    def __init__(
        self,
        source_factory: Callable[[], FrameSource],
        pipe_factory: Callable[[], FacePipeline],
        setup: Callable[[Any], AttemptSetup],
    ) -> None:
        super().__init__(source_factory, pipe_factory)
        self.setup = setup

    @pyqtSlot()
    def run(self) -> None:
        try:
            pipe = self.pipe_factory()
            matcher, threshold, params, liveness = self.setup(pipe)
            rec = _BoxRecorder(pipe)
            last: dict[str, np.ndarray] = {}

            def keep(fr: Frame) -> Frame:
                last["image"] = fr.image
                rec.boxes = []
                return fr

            def on_frame(fr: FrameResult) -> None:
                self.frames_seen += 1
                self.frame.emit(FramePacket(
                    last["image"], fr.index, boxes=list(rec.boxes), dark=fr.dark,
                    distance=fr.distance, match=fr.match, threshold=threshold, ms=fr.ms,
                ))

            self.source = self.source_factory()
            with self.source as src:
                res = authenticate(rec, matcher, threshold, (keep(f) for f in src), params,
                                   on_frame=on_frame, should_stop=self._stop.is_set,
                                   liveness=liveness, on_prompt=self.prompt.emit)
            if not self._stop.is_set():
                self.result.emit(res)
        except Exception as e:  # every failure reaches the GUI as words
            self.error.emit(plain_message(e))
        finally:
            self.finished.emit()


class WorkerThread:
    """Owns one worker and the QThread it runs in.

    ``start()`` moves the worker to a new thread and runs it; ``stop()`` asks it to end and
    waits (the source is closed by then). Connect to the worker's signals before start().
    """

    def __init__(self, worker: CameraWorker) -> None:
        self.worker = worker
        self.thread = QThread()
        worker.moveToThread(self.thread)
        self.thread.started.connect(worker.run)
        worker.finished.connect(self.thread.quit)

    def start(self) -> None:
        self.thread.start()

    def is_running(self) -> bool:
        return self.thread.isRunning()

    def stop(self, wait_ms: int = 10_000) -> bool:
        """Stop the worker; True when the thread ended within ``wait_ms``."""
        self.worker.stop()
        if not self.thread.isRunning():
            return True
        self.thread.quit()
        return bool(self.thread.wait(wait_ms))
