"""One way to open an onnxruntime session for every model of the engine."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

from faceunlock.errors import ModelError


def open_session(path: Path, data: bytes, threads: int) -> ort.InferenceSession:
    """A CPU session for ``data`` (the bytes of ``path``, already sha-checked), with exactly
    one input and one output, as every model of the engine has.

    Intra-op threads do not spin-wait after a run: the detector and the encoder run one after
    the other on the same cores, and a spinning pool of one steals the CPU from the other
    (measured: the encoder took 6.5 ms per chip after the detector, 3.7 ms alone).
    Raises ModelError naming the file when onnxruntime cannot load it or its inputs and
    outputs are not one each.
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

