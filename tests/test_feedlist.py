"""`python -m bot feeds add|remove|list|import|export` (bot/feedlist.py) over real HTTP, on
SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from bot.feeds.opml import OpmlFeed, read_opml, write_opml
from bot.storage.models import utcnow
from tests.servers import feedgen
from tests.servers.feed_server import FeedServer

REPO = Path(__file__).resolve().parent.parent
ENGLISH = [
    {"id": f"en-{n}", "title": f"The minister of health visits the hospitals of region {n}"}
    for n in range(3)
]
FRENCH = [
    {"id": f"fr-{n}", "title": f"Le ministre de la santé visite les hôpitaux de la région {n}"}
    for n in range(2)
]


@pytest.fixture
def cli_env(
    tmp_path: Path, database_url: str, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> FeedServer:
    """A config file with one feed on the feed server, and the test database."""
    feed_server.add("/config.xml", feedgen.rss(ENGLISH, title="Config feed"))
    feed_server.add("/en.xml", feedgen.rss(ENGLISH, title="English <b>wire</b>"))
    feed_server.add("/fr.xml", feedgen.rss(FRENCH, title="Fil français"))
    feed_server.add("/page.html", b"<html><body>hello</body></html>", content_type="text/html")
    config = tmp_path / "config.toml"
    config.write_text(
        f'seeds_dir = "{REPO / "seeds"}"\n[[feeds]]\n'
        f'url = "{feed_server.url("/config.xml")}"\nname = "Config Wire"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("SAHEL_WATCH_CONFIG", str(config))
    monkeypatch.setenv("DATABASE_URL", database_url)
    return feed_server


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["feeds", *argv])
    return code, capsys.readouterr().out


def test_add_list_and_remove(
    cli_env: FeedServer, capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    server = cli_env
    assert main(["feeds", "list"]) == 0  # before any database: the config's, nothing created
    out, err = capsys.readouterr()
    assert out.splitlines()[1:] == [
        f"  Config Wire  [en]  {server.url('/config.xml')}",
        "",
        "added (0):",
    ]
    assert "; no feed added yet" in err
    if database_url.startswith("sqlite:///"):
        assert not Path(database_url.removeprefix("sqlite:///")).exists()
    en = server.url("/en.xml")
    assert run(capsys, "add", en, "--name", "Cli Wire") == (
        0,
        "added: Cli Wire (3 entries, language en)\n",
    )
    assert run(capsys, "add", en) == (0, "already polled\n")
    assert run(capsys, "add", server.url("/fr.xml")) == (
        0,
        "added: Fil français (2 entries, language fr)\n",
    )
    code, out = run(capsys, "add", server.url("/page.html"))
    assert code == 1 and out.startswith("refused: not a feed: ")
    assert run(capsys, "add", "ftp://news.test/rss") == (
        1,
        "refused: the address must start with http:// or https:// and name a host\n",
    )
    assert run(capsys, "add", server.url("/config.xml")) == (0, "already in the config file\n")
    code, out = run(capsys, "list")
    lines = out.splitlines()
    assert code == 0 and lines[0].endswith("config.toml (1):")
    assert lines[1] == f"  Config Wire  [en]  {server.url('/config.xml')}"
    assert lines[3] == "added (2):"
    assert lines[4].startswith(f"  Cli Wire  [en]  {en}  by command line 20")
    assert lines[5].startswith(f"  Fil français  [fr]  {server.url('/fr.xml')}  by command line")
    assert run(capsys, "remove", "cli wire") == (0, "removed: Cli Wire is no longer polled\n")
    code, out = run(capsys, "remove", "Config Wire")
    assert code == 1 and out.startswith("Config Wire is a config feed: remove it from ")
    assert run(capsys, "remove", "Cli Wire")[0] == 1
    assert "Cli Wire" not in run(capsys, "list")[1]
    code, out = run(capsys)  # without a subcommand: each feed's health, as before
    assert code == 0 and out.startswith("feed ") and "last status" in out.splitlines()[0]


def test_opml_round_trip(
    cli_env: FeedServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server = cli_env
    reader = [
        OpmlFeed(server.url("/en.xml"), "English & Co", ""),
        OpmlFeed(server.url("/fr.xml"), "", "fr"),
        OpmlFeed(server.url("/config.xml"), "Same as the config", ""),
        OpmlFeed(server.url("/page.html"), "Not a feed", ""),
        OpmlFeed("http://127.0.0.1:1/feed.xml", "Nobody listens", ""),
    ]
    subscriptions = tmp_path / "reader.opml"
    subscriptions.write_bytes(write_opml(reader, title="My reader", created=utcnow()))
    code, out = run(capsys, "import", str(subscriptions))
    lines = out.splitlines()
    assert code == 1  # some feeds were refused
    assert lines[0] == f"{server.url('/en.xml')}  added: English & Co (3 entries, language en)"
    assert lines[1] == f"{server.url('/fr.xml')}  added: Fil français (2 entries, language fr)"
    assert lines[2] == f"{server.url('/config.xml')}  already in the config file"
    assert lines[3].startswith(f"{server.url('/page.html')}  refused: not a feed")
    assert lines[4].startswith("http://127.0.0.1:1/feed.xml  refused: ")
    assert lines[-1] == "5 feeds in the file: 2 added, 2 refused"
    exported = tmp_path / "out.opml"
    assert run(capsys, "export", str(exported)) == (0, f"3 feeds written to {exported}\n")
    assert read_opml(exported.read_bytes()) == [
        OpmlFeed(server.url("/config.xml"), "Config Wire", "en"),
        OpmlFeed(server.url("/en.xml"), "English & Co", "en"),
        OpmlFeed(server.url("/fr.xml"), "Fil français", "fr"),
    ]
    code, out = run(capsys, "export")  # to stdout
    assert code == 0 and out.encode() == exported.read_bytes()[: len(out.encode())]
    assert run(capsys, "import", str(exported))[1].splitlines()[-1] == (
        "3 feeds in the file: 0 added, 0 refused"  # the same list again: nothing new
    )
    bomb = tmp_path / "bomb.opml"
    bomb.write_bytes(b'<!DOCTYPE opml [<!ENTITY a "x">]><opml><body/></opml>')
    assert main(["feeds", "import", str(bomb)]) == 1
    assert "DTDForbidden" in capsys.readouterr().err
