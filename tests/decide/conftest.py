"""The real embedding model, loaded once for the decision core's tests."""

from __future__ import annotations

import pytest

from bot.decide.embed import UsemEmbedder, load_embedder


@pytest.fixture(scope="session")
def embedder() -> UsemEmbedder:
    return load_embedder()
