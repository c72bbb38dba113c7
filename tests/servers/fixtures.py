"""pytest fixtures for the loopback feed server (loaded from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.servers.feed_server import FeedServer


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A started feed server on 127.0.0.1 (no added latency), stopped after the test."""
    with FeedServer() as server:
        yield server


@pytest.fixture
def feed_server_factory() -> Iterator[Callable[..., FeedServer]]:
    """Start feed servers with options (`latency=`, `hosts=`); all stopped after the test."""
    servers: list[FeedServer] = []

    def start(*, latency: float = 0.0, hosts: int = 1) -> FeedServer:
        server = FeedServer(latency=latency, hosts=hosts).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
