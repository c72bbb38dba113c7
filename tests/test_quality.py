"""The decision quality bar, through the real paths a user runs:

- `python -m bot poll-once --json`: each labelled file served as feeds over HTTP by the feed
  server, decided by the pipeline on SQLite and on PostgreSQL;
- `python -m bot evaluate FILE --json`: the same decision path on a temporary database.

The bar (issue 8): alert precision >= 0.97 and no off-topic item alerted, >= 95 % of new
developments alerted, >= 95 % of seed rewrites kept quiet, >= 90 % of duplicates in the story
of the item they duplicate. `labelled_items.json` meets it. The other files do not yet: they
are held to the figures measured when the decision core landed (`*_FLOOR`), so that a
change that makes them worse fails here, and the gap stays visible.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.servers.feedgen import atom, rss

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
EXPECTED = {
    "new_development": "new",
    "seed_rewrite": "seed",
    "syndicated_duplicate": "duplicate",
    "irrelevant": "irrelevant",
    "tricky_negative": "irrelevant",
}


@dataclass(frozen=True)
class Bar:
    alert_precision: float = 0.97
    off_topic_alerted: int = 0
    new: float = 0.95
    seed: float = 0.95
    duplicate: float = 0.90


ISSUE_BAR = Bar()
# Every labelled file is held to the issue's bar (session 3: relevance reads the examples by
# a fitted direction; dissolving a body is in the "restrict" family of acts with banning it).
REAL_FLOOR = ISSUE_BAR
MORE_FLOOR = ISSUE_BAR
EXTRA_FLOOR = ISSUE_BAR
FILES = {
    "labelled_items.json": (SHARED / "labelled_items.json", ISSUE_BAR),
    "extra_items.json": (REPO / "tests" / "data" / "extra_items.json", EXTRA_FLOOR),
    "more_items.json": (REPO / "tests" / "data" / "more_items.json", MORE_FLOOR),
    "real_dev_items.json": (SHARED / "real_dev_items.json", REAL_FLOOR),
}


def labelled(name: str) -> tuple[list[dict[str, Any]], Bar]:
    """A labelled file; one from ../shared skips where the folder is absent, except in CI."""
    path, bar = FILES[name]
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: CI always has ../shared beside the repository")
        pytest.skip(f"{path} is not beside the repository")
    return json.loads(path.read_text(encoding="utf-8")), bar


def check(
    items: list[dict[str, Any]], decisions: dict[str, tuple[str, int | None]], bar: Bar
) -> str:
    """Score `decisions` (id -> decision, story id) against the labels; assert `bar`."""
    right: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    misses = []
    for it in items:
        kind = it["labels"]["kind"]
        decision, story = decisions[it["id"]]
        ok = decision == EXPECTED[kind]
        if ok and kind == "syndicated_duplicate":
            ok = story is not None and story == decisions[it["labels"]["duplicate_of"]][1]
        total[kind] += 1
        right[kind] += ok
        if not ok:
            misses.append(f"{it['id']} {kind} -> {decision}")
    alerts = [it for it in items if decisions[it["id"]][0] == "new"]
    right_alerts = sum(it["labels"]["kind"] == "new_development" for it in alerts)
    off_topic = [
        it["id"] for it in alerts if it["labels"]["kind"] in ("irrelevant", "tricky_negative")
    ]
    recall = {k: right[k] / total[k] for k in total}
    report = (
        f"alerts {len(alerts)}, right {right_alerts}; "
        + ", ".join(f"{k} {right[k]}/{total[k]}" for k in EXPECTED if k in total)
        + f"; misses: {misses}"
    )
    assert right_alerts >= bar.alert_precision * len(alerts), report
    assert len(off_topic) <= bar.off_topic_alerted, report
    assert recall["new_development"] >= bar.new, report
    assert recall["seed_rewrite"] >= bar.seed, report
    assert recall["syndicated_duplicate"] >= bar.duplicate, report
    return report


def serve_and_poll(
    items: list[dict[str, Any]], fmt: str, feed_server: Any, tmp_path: Path, database_url: str
) -> dict[str, tuple[str, int | None]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in items:
        groups[item["feed"]].append(item)
    build = rss if fmt == "rss" else atom
    lines = ["max_age_hours = 0", f'seeds_dir = "{REPO / "seeds"}"']
    for name, group in sorted(groups.items()):
        path = f"/{fmt}/{name}.xml"
        ctype = "application/rss+xml" if fmt == "rss" else "application/atom+xml"
        feed_server.add(
            path, body=build(group, title=name, link=f"https://{name}.test/"), content_type=ctype
        )
        lines += [
            "[[feeds]]",
            f'url = "{feed_server.url(path)}"',
            f'name = "{name}"',
            f'language = "{group[0]["lang"]}"',
        ]
    config = tmp_path / f"quality-{fmt}.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {**os.environ, "SAHEL_WATCH_CONFIG": str(config), "DATABASE_URL": database_url}
    env.pop("TELEGRAM_BOT_TOKEN", None)
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "poll-once", "--json"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    by_guid = {row["guid"]: (row["decision"], row["story_id"]) for row in rows}
    missing = [it["id"] for it in items if it["id"] not in by_guid]
    assert not missing, f"entries not decided: {missing}"
    return by_guid


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("labelled_items.json", "rss"),
        ("labelled_items.json", "atom"),
        ("extra_items.json", "rss"),
        ("more_items.json", "rss"),
        ("real_dev_items.json", "rss"),
    ],
)
def test_poll_once_meets_the_bar(
    name: str,
    fmt: str,
    feed_server: Any,
    tmp_path: Path,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    items, bar = labelled(name)
    decisions = serve_and_poll(items, fmt, feed_server, tmp_path, database_url)
    report = check(items, decisions, bar)
    with capsys.disabled():
        print(f"\npoll-once, {name} as {fmt} ({database_url.split(':')[0]}): {report}")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FILES))
def test_evaluate_meets_the_bar(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    items, bar = labelled(name)
    path = FILES[name][0]
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "evaluate", str(path), "--json"],
        env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    labels = result["labels"]
    report = f"{result['alerts']} alerts, {result['right_alerts']} right; {result['misjudged']}"
    assert result["items"] == len(items)
    assert result["right_alerts"] >= bar.alert_precision * result["alerts"], report
    assert result["false_alerts_off_topic"] <= bar.off_topic_alerted, report
    assert labels["new_development"]["recall"] >= bar.new, report
    assert labels["seed_rewrite"]["recall"] >= bar.seed, report
    assert labels["syndicated_duplicate"]["recall"] >= bar.duplicate, report
    with capsys.disabled():
        print(f"\nevaluate, {name}: {result['alerts']} alerts, {result['right_alerts']} right")
