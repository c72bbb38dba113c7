"""What users send to the bot, for the Bot API test server: the update queue, served by
getUpdates (long poll, offset confirms) or pushed to a webhook (with the secret header).

Like Telegram, `allowed_updates` (of getUpdates or setWebhook) is remembered until changed,
and an update of a kind not allowed is dropped, never delivered: a bot that forgets to ask
for callback_query never sees a button pressed. An empty list means Telegram's default,
every kind but chat_member, message_reaction and message_reaction_count.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from tests.servers.bot_api_http import Answer, error, int_param, json_param, ok

_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
_NOT_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


class UpdateQueue:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._updates: list[dict[str, Any]] = []
        self._next = 1
        self._webhook: tuple[str, str | None] | None = None
        self._pusher: threading.Thread | None = None
        self._closed = False
        self._allowed: frozenset[str] | None = None  # None: Telegram's default
        self.dropped: list[dict[str, Any]] = []  # updates of a kind the bot did not allow

    def push(self, update: dict[str, Any]) -> int:
        """Queue an update (without update_id); returns the id it got."""
        with self._cond:
            update["update_id"] = self._next
            self._next += 1
            self._updates.append(update)
            self._cond.notify_all()
            if self._webhook is not None:
                self._start_pusher()
            return int(update["update_id"])

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._updates)

    def wait_consumed(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._updates:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self._updates)} updates never fetched")
                self._cond.wait(left)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _allow(self, params: dict[str, Any]) -> None:  # with the lock held
        if "allowed_updates" in params:
            allowed = json_param(params, "allowed_updates") or []
            self._allowed = frozenset(str(kind) for kind in allowed) or None

    def _drop_unwanted(self) -> None:  # with the lock held
        kept: list[dict[str, Any]] = []
        for update in self._updates:
            kinds = set(update) - {"update_id"}
            wanted = kinds - _NOT_BY_DEFAULT if self._allowed is None else kinds & self._allowed
            (kept if wanted else self.dropped).append(update)
        if len(kept) != len(self._updates):
            self._updates = kept
            self._cond.notify_all()

    def get_updates(self, params: dict[str, Any]) -> Answer:
        offset = int_param(params, "offset", 0) or 0
        limit = max(1, min(100, int_param(params, "limit", 100) or 100))
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        with self._cond:
            if self._webhook is not None:
                return error(409, _CONFLICT)
            self._allow(params)
            while True:
                if offset:  # confirms every update before it
                    self._updates = [u for u in self._updates if u["update_id"] >= offset]
                    self._cond.notify_all()
                self._drop_unwanted()
                left = deadline - time.monotonic()
                if self._updates or left <= 0 or self._closed:
                    return ok(self._updates[:limit])
                self._cond.wait(min(left, 0.5))

    def set_webhook(self, params: dict[str, Any]) -> Answer:
        url = str(params.get("url") or "")
        with self._cond:
            if not url:
                self._webhook = None
                return ok(True, description="Webhook was deleted")
            self._webhook = (url, params.get("secret_token") or None)
            self._allow(params)
            if self._updates:
                self._start_pusher()
        return ok(True, description="Webhook was set")

    def delete_webhook(self, params: dict[str, Any]) -> Answer:
        with self._cond:
            self._webhook = None
            if str(params.get("drop_pending_updates", "")).lower() == "true":
                self._updates.clear()
        return ok(True, description="Webhook is already deleted")

    def webhook_info(self, params: dict[str, Any]) -> Answer:
        with self._cond:
            url = self._webhook[0] if self._webhook else ""
            info = {
                "url": url,
                "has_custom_certificate": False,
                "pending_update_count": len(self._updates),
            }
        return ok(info)

    def _start_pusher(self) -> None:  # with the lock held
        if self._pusher is None or not self._pusher.is_alive():
            self._pusher = threading.Thread(
                target=self._push_webhook, name="bot-api-webhook", daemon=True
            )
            self._pusher.start()

    def _push_webhook(self) -> None:
        with httpx.Client(timeout=5) as client:
            while True:
                with self._cond:
                    self._drop_unwanted()
                    if self._closed or self._webhook is None or not self._updates:
                        return
                    update, (url, secret) = self._updates[0], self._webhook
                headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
                try:
                    delivered = client.post(url, json=update, headers=headers).status_code == 200
                except httpx.HTTPError:
                    delivered = False
                with self._cond:
                    if delivered and self._updates and self._updates[0] is update:
                        self._updates.pop(0)
                        self._cond.notify_all()
                if not delivered:
                    time.sleep(0.2)
