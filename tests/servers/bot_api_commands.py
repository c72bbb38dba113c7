"""setMyCommands, getMyCommands and deleteMyCommands of the Bot API test server: one command
list per (scope, language_code), as Telegram keeps them, so tests can see which list a
French client gets. Names are 1–32 of [a-z0-9_], descriptions 1–256 characters, at most 100
commands; language_code is empty or two lower-case letters; a chat scope needs its chat_id.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

from tests.servers.bot_api_http import Answer, error, json_param, ok

_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")
_LANGUAGE = re.compile(r"[a-z]{2}")
_SCOPES = {
    "default": (),
    "all_private_chats": (),
    "all_group_chats": (),
    "all_chat_administrators": (),
    "chat": ("chat_id",),
    "chat_administrators": ("chat_id",),
    "chat_member": ("chat_id", "user_id"),
}


class CommandLists:
    """Thread-safe; the server dispatches the three methods here."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sets: dict[tuple[str, str], list[dict[str, str]]] = {}

    def get(
        self, scope: dict[str, Any] | None = None, language_code: str = ""
    ) -> list[dict[str, str]]:
        key = (_scope_key(scope or {"type": "default"}), language_code)
        with self._lock:
            return list(self._sets.get(key, []))

    def all(self) -> dict[tuple[str, str], list[dict[str, str]]]:
        with self._lock:
            return {key: list(value) for key, value in self._sets.items()}

    def _key(self, params: dict[str, Any]) -> tuple[str, str]:
        """(scope, language_code) of a *MyCommands call; ValueError as Telegram words it."""
        scope = json_param(params, "scope") or {"type": "default"}
        language = str(params.get("language_code") or "")
        if language and not _LANGUAGE.fullmatch(language):
            raise ValueError("Bad Request: invalid language code specified")
        if not isinstance(scope, dict) or scope.get("type") not in _SCOPES:
            raise ValueError("Bad Request: can't parse BotCommandScope")
        for name in _SCOPES[str(scope["type"])]:
            if scope.get(name) in (None, ""):
                raise ValueError(f"Bad Request: {name} is empty")
        return _scope_key(scope), language

    def get_commands(self, params: dict[str, Any]) -> Answer:
        try:
            key = self._key(params)
        except ValueError as exc:
            return error(400, str(exc))
        with self._lock:
            return ok(list(self._sets.get(key, [])))

    def set_commands(self, params: dict[str, Any]) -> Answer:
        try:
            key = self._key(params)
        except ValueError as exc:
            return error(400, str(exc))
        commands = json_param(params, "commands")
        if not isinstance(commands, list) or len(commands) > 100:
            return error(400, "Bad Request: commands must be a list of at most 100 commands")
        for command in commands:
            name, about = command.get("command", ""), command.get("description", "")
            if not _COMMAND_NAME.fullmatch(name) or not 1 <= len(about) <= 256:
                return error(400, "Bad Request: BOT_COMMAND_INVALID")
        with self._lock:
            self._sets[key] = [
                {"command": c["command"], "description": c["description"]} for c in commands
            ]
        return ok(True)

    def delete_commands(self, params: dict[str, Any]) -> Answer:
        try:
            key = self._key(params)
        except ValueError as exc:
            return error(400, str(exc))
        with self._lock:
            self._sets.pop(key, None)
        return ok(True)


def _scope_key(scope: dict[str, Any]) -> str:
    """A scope as canonical JSON: chat ids as integers, keys sorted."""
    fixed = {k: int(v) if k in ("chat_id", "user_id") else v for k, v in scope.items()}
    return json.dumps(fixed, sort_keys=True)
