from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.seeds import load_seeds

REPO = Path(__file__).resolve().parent.parent


def test_project_seed_story_loads_with_metadata() -> None:
    seeds = load_seeds(REPO / "seeds")
    assert [s.id for s in seeds] == ["aes-algeria-drone-2025"]
    seed = seeds[0]
    assert seed.language == "en"
    assert "Tin Zaouatine" in seed.text and "ambassadors" in seed.text
    assert "READ ALSO" not in seed.text
    assert any(e.startswith("2025-04-01") for e in seed.events)
    assert seed.published is not None and seed.published.tzinfo is not None


def test_second_seed_is_a_dropped_in_file(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(
        (REPO / "seeds" / "aes-algeria-drone-2025.toml").read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    (tmp_path / "b.toml").write_text(
        'id = "b"\ntitle = "Another"\nlanguage = "fr"\ntext = "Un texte."\n', encoding="utf-8"
    )
    assert [s.id for s in load_seeds(tmp_path)] == ["aes-algeria-drone-2025", "b"]


def test_bad_seed_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('id = "x"\ntitle = "t"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.toml: text"):
        load_seeds(tmp_path)


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no seed story"):
        load_seeds(tmp_path)
