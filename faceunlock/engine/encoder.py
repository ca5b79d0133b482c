"""Face encoder: aligned 150x150 RGB chips in, 128-D descriptors out (onnxruntime).

The model (``models/encoder.onnx``, converted from dlib's CC0 face recognition ResNet by
:mod:`faceunlock.training.dlib.resnet`) does all preprocessing inside the graph: it takes
``uint8`` NHWC RGB chips as produced by the aligner (150x150, padding 0.25) and returns
descriptors that are **not** L2-normalised; compare them with Euclidean distance against
:attr:`FaceEncoder.threshold` (0.6 for dlib's model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from faceunlock.engine.modelfile import resolve_model
from faceunlock.engine.ortsession import LazyOnnxModel
from faceunlock.errors import InputError, ModelError

DEFAULT_MODEL = "encoder.onnx"
CHIP_SIZE = 150


class FaceEncoder(LazyOnnxModel):
    """Lazily-loaded onnxruntime session computing face descriptors.

    The constructor only records the path; the model file is read, checked against its
    sidecar's sha256 and turned into a session on first use (:meth:`embed`, :meth:`load` or
    any of the model attributes). Loading is thread-safe; :meth:`embed` may be called from
    several threads (onnxruntime sessions are re-entrant).
    """

    def __init__(self, model_path: str | Path | None = None, *, threads: int | None = None
                 ) -> None:
        super().__init__(resolve_model(model_path, DEFAULT_MODEL), threads)
        self.batch_size: int = 8
        self._sha256 = ""
        self._dim = 0

    # -- loading ------------------------------------------------------------------------------

    def _accept(self, inp: Any, out: Any, meta: dict[str, Any]) -> None:
        if inp.type != "tensor(uint8)" or list(inp.shape[1:]) != [CHIP_SIZE, CHIP_SIZE, 3]:
            raise ModelError(self.path, f"input {inp.name!r} is {inp.type} {inp.shape}, expected "
                             f"uint8 [N, {CHIP_SIZE}, {CHIP_SIZE}, 3]")
        dim = out.shape[-1] if out.shape else None
        if out.type != "tensor(float)" or len(out.shape) != 2 or not isinstance(dim, int):
            raise ModelError(self.path, f"output {out.name!r} is {out.type} {out.shape}, "
                             "expected float [N, D]")
        declared = meta.get("output", {}).get("dim") if isinstance(meta.get("output"), dict) \
            else None
        if declared is not None and declared != dim:
            raise ModelError(self.path, f"output dim {dim} differs from sidecar's {declared}")
        self._sha256 = str(meta["sha256"])
        self._dim = dim

    # -- attributes (loading on access) ------------------------------------------------------

    @property
    def dim(self) -> int:
        """Descriptor length (128 for dlib's model)."""
        self.load()
        return self._dim

    @property
    def threshold(self) -> float:
        """Same-person Euclidean distance threshold from the sidecar (``default_threshold``)."""
        self.load()
        return float(self._meta.get("default_threshold", 0.6))

    @property
    def sha256(self) -> str:
        """sha256 of the model file (verified at load); identifies the embedding space."""
        self.load()
        return self._sha256


    # -- inference -------------------------------------------------------------------------

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """Descriptors of aligned face chips.

        ``chips``: ``uint8`` RGB, shape (N, 150, 150, 3) or a single (150, 150, 3) chip.
        Returns ``float32`` (N, D), D = :attr:`dim` (128), not L2-normalised; N may be 0.
        Raises InputError for a wrong type, dtype or shape; ModelError if the model is bad.
        """
        if not isinstance(chips, np.ndarray):
            raise InputError(f"chips must be a numpy array, got {type(chips).__name__}")
        if chips.dtype != np.uint8:
            raise InputError(f"chips must have dtype uint8 (RGB 0..255), got {chips.dtype}")
        given = tuple(chips.shape)
        if chips.ndim == 3:
            chips = chips[None]
        if chips.ndim != 4 or chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
            raise InputError(
                f"chips must have shape (N, {CHIP_SIZE}, {CHIP_SIZE}, 3) or "
                f"({CHIP_SIZE}, {CHIP_SIZE}, 3), got {given}")
        self.load()
        session = self._session
        assert session is not None
        n = chips.shape[0]
        out = np.empty((n, self._dim), dtype=np.float32)
        step = max(1, int(self.batch_size))
        for start in range(0, n, step):
            batch = np.ascontiguousarray(chips[start:start + step])
            (res,) = session.run(None, {self._input_name: batch})
            out[start:start + step] = res
        return out

    def __repr__(self) -> str:
        state = "loaded" if self.loaded else "not loaded"
        return f"FaceEncoder({str(self.path)!r}, threads={self.threads}, {state})"
