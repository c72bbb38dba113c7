from __future__ import annotations

import pytest

from bot.decide.policy import DEFAULT, Logistic


def test_score_is_bias_plus_weighted_features() -> None:
    model = Logistic(("a", "b"), (2.0, -1.0), 0.5)
    assert model.score((1.0, 3.0)) == pytest.approx(-0.5)


def test_a_wrong_number_of_features_is_an_error() -> None:
    with pytest.raises(ValueError, match="1 features for 2 weights"):
        Logistic(("a", "b"), (1.0, 1.0), 0.0).score((1.0,))


def test_strongest_names_what_pushed_hardest() -> None:
    model = Logistic(("meaning", "gap", "shared"), (3.0, -4.0, 1.0), 0.0)
    assert model.strongest((0.9, 0.1, 0.5)) == ("meaning 0.90", "shared 0.50")


def test_default_models_match_their_feature_names() -> None:
    for model in (DEFAULT.relevance, DEFAULT.seed, DEFAULT.same_story):
        assert len(model.names) == len(model.weights) >= 5
    # what the fit found, and what the decisions rely on: meaning and shared features join
    # stories, a long gap and title facts the story lacks keep them apart
    w = dict(zip(DEFAULT.same_story.names, DEFAULT.same_story.weights, strict=True))
    assert w["meaning"] > 0 and w["shared features"] > 0
    assert w["gap"] < 0 and w["title novelty"] < 0
