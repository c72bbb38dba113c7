"""Load the seed stories: every `*.toml` file in the seeds folder is one story."""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.errors import ConfigError
from bot.records import Seed


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date: date
    what: str = Field(min_length=1)


class _SeedFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1)
    title: str = Field(min_length=1)
    language: str = "en"
    published: datetime | None = None
    summary: str = ""
    text: str = Field(min_length=1)
    events: list[_Event] = Field(default_factory=list)


def load_seeds(folder: Path) -> list[Seed]:
    """Every seed story in `folder`, sorted by file name; a bad file is a `ConfigError`."""
    if not folder.is_dir():
        raise ConfigError(f"{folder}: seeds folder not found")
    seeds = []
    for path in sorted(folder.glob("*.toml")):
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
            data = _SeedFile.model_validate(raw)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read seed story: {exc}") from None
        except ValidationError as exc:
            where = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(f"{path}: {where}") from None
        published = data.published
        if published is not None and published.tzinfo is None:
            published = published.replace(tzinfo=UTC)
        seeds.append(
            Seed(
                id=data.id,
                title=data.title,
                language=data.language,
                text=data.text.strip(),
                summary=data.summary,
                published=published,
                events=tuple(f"{e.date.isoformat()}: {e.what}" for e in data.events),
            )
        )
    if not seeds:
        raise ConfigError(f"{folder}: no seed story (*.toml) found")
    return seeds
