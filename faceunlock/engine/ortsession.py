"""One way to open an onnxruntime session for every model of the engine."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Self

import onnxruntime as ort

from faceunlock.engine.modelfile import load_model_bytes
from faceunlock.errors import ModelError


def open_session(path: Path, data: bytes, threads: int) -> ort.InferenceSession:
    """A CPU session for ``data`` (the bytes of ``path``, already sha-checked), with exactly
    one input and one output, as every model of the engine has.

    Intra-op threads do not spin-wait after a run: the detector and the encoder run one after
    the other on the same cores, and a spinning pool of one steals the CPU from the other
    (measured: the encoder took 6.5 ms per chip after the detector, 3.7 ms alone).
    Raises ModelError naming the file when onnxruntime cannot load it or its inputs and
    outputs are not one each. onnxruntime's telemetry is off: ``faceunlock/__init__.py`` sets
    ``ORT_DISABLE_TELEMETRY`` before onnxruntime is imported (no session option does it).
    """
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # no arena: it would keep the largest activations ever seen (the detector's tiled pyramid
    # of a full 640x480 scan, ~100 MB) for the life of the process; measured cost: none
    # beyond noise on the bench frame. faceunlock.engine.memory.release_memory() gives the
    # freed pages back.
    opts.enable_cpu_mem_arena = False
    try:
        session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own (pybind) exception types
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(path, f"not a valid ONNX model: {msg}") from e
    n_in, n_out = len(session.get_inputs()), len(session.get_outputs())
    if n_in != 1 or n_out != 1:
        raise ModelError(path, f"expected 1 input and 1 output, found {n_in} and {n_out}")
    return session



class LazyOnnxModel:
    """Base of the engine's onnxruntime models (detector, encoder).

    The constructor only records ``path``; the file is read, checked against its sidecar's
    sha256 and opened with :func:`open_session` on first use, once, under a lock (sessions are
    re-entrant afterwards). Subclasses check the session's input and output, and read what
    they need from the sidecar, in :meth:`_accept`, raising ModelError naming the file.
    """

    def __init__(self, path: Path, threads: int | None) -> None:
        self.path = path
        self.threads: int = threads if threads else min(4, os.cpu_count() or 1)
        self._lock = threading.Lock()
        self._session: ort.InferenceSession | None = None
        self._meta: dict[str, Any] = {}
        self._input_name = ""

    def load(self) -> Self:
        """Load the model now (idempotent). Raises ModelError naming the file on any problem."""
        if self._session is None:
            with self._lock:
                if self._session is None:
                    data, meta = load_model_bytes(self.path)
                    session = open_session(self.path, data, self.threads)
                    self._accept(session.get_inputs()[0], session.get_outputs()[0], meta)
                    self._meta = meta
                    self._input_name = session.get_inputs()[0].name
                    self._session = session
        return self

    def _accept(self, inp: Any, out: Any, meta: dict[str, Any]) -> None:
        """Check the model's input and output (``NodeArg``s) and sidecar; keep what is needed."""
        raise NotImplementedError

    @property
    def loaded(self) -> bool:
        """Whether the session exists (never triggers loading)."""
        return self._session is not None

    @property
    def meta(self) -> dict[str, Any]:
        """The model's sidecar (a copy); loads the model."""
        self.load()
        return dict(self._meta)
