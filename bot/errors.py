"""The project's own error hierarchy; each stage translates its library's errors at the edge.

SahelWatchError
├── ConfigError      a wrong config file, seed file or environment value (exit 2)
├── FeedError        a feed could not be fetched or parsed (kept in the feed's health)
│   ├── FetchError
│   └── ParseError
└── StorageError     the database refused or is gone (retried next cycle); defined in
                     bot/storage/errors.py, raised in place of SQLAlchemy's errors
"""

from __future__ import annotations


class SahelWatchError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(SahelWatchError):
    """A configuration problem, phrased for the operator: file, key and problem."""


class FeedError(SahelWatchError):
    """A feed failed; the message is short and safe to show in /status."""


class FetchError(FeedError):
    """The HTTP side failed: status, timeout, size cap, redirects, refused address."""


class ParseError(FeedError):
    """The body could not be read as a feed."""
