"""The Bot API test server behaves like Telegram where the bot depends on it (real HTTP)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest

from tests.servers.bot_api import BotApiServer, Limits
from tests.servers.tg_html import HTMLParseError, parse, parse_html, utf16_len

UNLIMITED = Limits(enforce=False)


@pytest.fixture
def server() -> Iterator[BotApiServer]:
    with BotApiServer(limits=UNLIMITED) as running:
        yield running


@pytest.fixture
def api(server: BotApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server.base_url}/bot{server.token}/", timeout=10) as client:
        yield client


def send(api: httpx.Client, chat_id: int, text: str, **extra: Any) -> httpx.Response:
    return api.post("sendMessage", data={"chat_id": str(chat_id), "text": text, **extra})


def test_wrong_token_is_401(server: BotApiServer) -> None:
    response = httpx.post(f"{server.base_url}/bot999:WRONG/getMe")
    assert response.status_code == 401
    assert response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}


def test_get_me_and_unknown_method(api: httpx.Client, server: BotApiServer) -> None:
    me = api.post("getMe").json()
    assert me["ok"] and me["result"]["username"] == server.username and me["result"]["is_bot"]
    missing = api.post("sendTelepathy")
    assert missing.status_code == 404


def test_send_message_form_and_json_bodies(api: httpx.Client, server: BotApiServer) -> None:
    first = send(api, 42, "<b>bold</b> &amp; plain", parse_mode="HTML").json()
    second = api.post("sendMessage", json={"chat_id": 42, "text": "json body"}).json()
    assert first["ok"] and second["ok"]
    assert second["result"]["message_id"] > first["result"]["message_id"]
    assert first["result"]["chat"] == {"id": 42, "type": "private", "first_name": "User 42"}
    assert [m.plain for m in server.sent(42)] == ["bold & plain", "json body"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("1 < 2 > 0", "Unsupported start tag"),
        ("1 < 2", "Unclosed start tag"),
        ("AT&T", "Character '&' is reserved"),
        ("<b>open", 'end tag corresponding to start tag "b"'),
        ("<b><i>x</b></i>", "Unmatched end tag"),
        ("<script>alert(1)</script>", 'Unsupported start tag "script"'),
        ('<span class="x">s</span>', 'Unsupported start tag "span"'),
        ("<a>no href</a>", 'must have attribute "href"'),
        ("&nbsp;", "Unsupported HTML entity"),
    ],
)
def test_html_that_telegram_refuses(api: httpx.Client, text: str, problem: str) -> None:
    response = send(api, 5, text, parse_mode="HTML")
    assert response.status_code == 400
    assert "can't parse entities" in response.json()["description"]
    assert problem in response.json()["description"]


def test_html_that_telegram_accepts() -> None:
    text = (
        "<b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>n</ins><s>s</s><strike>k</strike>"
        "<del>d</del><code>c</code><pre>p</pre><blockquote>q</blockquote><tg-spoiler>t</tg-spoiler>"
        '<span class="tg-spoiler">x</span><a href="https://a.test/?a=1&amp;b=2">link</a>'
        " &lt;&gt;&amp;&quot;&#39;&#x27; 2 > 1"
    )
    plain, links = parse(text)
    assert plain == "bsieunskdcpqtxlink <>&\"'' 2 > 1"
    assert [(link.text, link.href) for link in links] == [("link", "https://a.test/?a=1&b=2")]


def test_plain_text_is_not_parsed(api: httpx.Client, server: BotApiServer) -> None:
    assert send(api, 5, "1 < 2 & <b>").status_code == 200
    assert server.sent(5)[0].plain == "1 < 2 & <b>"


def test_length_limit_counts_utf16_after_entities(api: httpx.Client) -> None:
    assert send(api, 7, "a" * 4096).status_code == 200
    assert send(api, 7, "<b>" + "a" * 4096 + "</b>", parse_mode="HTML").status_code == 200
    assert send(api, 7, "&amp;" * 4096, parse_mode="HTML").status_code == 200
    too_long = send(api, 7, "a" * 4097)
    assert too_long.status_code == 400
    assert too_long.json()["description"] == "Bad Request: message is too long"
    assert utf16_len("🛰") == 2
    assert send(api, 7, "🛰" * 2049).status_code == 400  # 4098 UTF-16 units
    assert send(api, 7, "   ").json()["description"] == "Bad Request: message text is empty"


def test_blocked_chat_is_403(api: httpx.Client, server: BotApiServer) -> None:
    server.block(9)
    response = send(api, 9, "hello")
    assert response.status_code == 403
    assert response.json()["description"] == "Forbidden: bot was blocked by the user"
    assert server.sent(9) == []


def test_migrated_group_names_the_new_chat(api: httpx.Client, server: BotApiServer) -> None:
    server.migrate(-55, -1001234567890)
    answer = send(api, -55, "hi").json()
    assert answer["error_code"] == 400
    assert answer["parameters"] == {"migrate_to_chat_id": -1001234567890}
    assert send(api, -1001234567890, "hi").status_code == 200


def test_topic_messages_need_a_forum(api: httpx.Client, server: BotApiServer) -> None:
    assert send(api, -1001, "x", message_thread_id="5").status_code == 400
    server.add_chat(-1001, "supergroup", is_forum=True)
    result = send(api, -1001, "x", message_thread_id="5").json()["result"]
    assert result["message_thread_id"] == 5 and result["is_topic_message"]
    assert server.sent(-1001)[0].thread_id == 5


def test_rate_limits_answer_429_with_retry_after() -> None:
    limits = Limits(overall_per_second=1000, overall_burst=1000, chat_per_second=1, chat_burst=3)
    with (
        BotApiServer(limits=limits) as server,
        httpx.Client(base_url=f"{server.base_url}/bot{server.token}/") as api,
    ):
        codes = [send(api, 1, f"m{i}").status_code for i in range(5)]
        assert codes == [200, 200, 200, 429, 429]  # burst of 3 per chat
        answer = send(api, 1, "again").json()
        assert answer["parameters"]["retry_after"] >= 1
        assert "Too Many Requests: retry after" in answer["description"]
        assert send(api, 2, "another chat").status_code == 200
        assert server.rate_limited == 3


def test_overall_and_group_limits() -> None:
    limits = Limits(overall_per_second=0.01, overall_burst=30, chat_per_second=100,
                    chat_burst=100, group_per_minute=20, group_burst=20)  # fmt: skip
    with (
        BotApiServer(limits=limits) as server,
        httpx.Client(base_url=f"{server.base_url}/bot{server.token}/") as api,
    ):
        group = [send(api, -7, f"g{i}").status_code for i in range(21)]
        assert group.count(200) == 20 and group[-1] == 429
        overall = [send(api, 100 + i, "x").status_code for i in range(15)]
        assert overall.count(429) == 5  # 30 tokens in all: 20 went to the group
        assert server.rate_limited == 1 + overall.count(429)


def test_scripted_failures(api: httpx.Client, server: BotApiServer) -> None:
    server.fail("sendMessage", times=1, status=500, description="Internal Server Error")
    assert send(api, 3, "x").status_code == 500
    assert send(api, 3, "x").status_code == 200
    server.flood(times=1, retry_after=3)
    answer = send(api, 3, "y").json()
    assert answer["parameters"]["retry_after"] == 3
    server.fail("sendMessage", status=None)
    with pytest.raises(httpx.RemoteProtocolError):
        send(api, 3, "dropped")
    server.fail("sendMessage", lose_response=True)
    with pytest.raises(httpx.RemoteProtocolError):
        send(api, 3, "delivered, answer lost")
    assert [m.plain for m in server.sent(3)] == ["x", "delivered, answer lost"]


def test_long_poll_waits_for_an_update_and_offset_confirms(
    api: httpx.Client, server: BotApiServer
) -> None:
    timer = threading.Timer(0.3, server.send_text, args=(11, "/latest@sahel_test_bot 3"))
    timer.start()
    started = time.monotonic()
    updates = api.post("getUpdates", data={"timeout": "5"}).json()["result"]
    waited = time.monotonic() - started
    assert 0.2 < waited < 4
    message = updates[0]["message"]
    assert message["text"] == "/latest@sahel_test_bot 3"
    assert message["entities"] == [{"type": "bot_command", "offset": 0, "length": 22}]
    again = api.post(
        "getUpdates", data={"offset": str(updates[0]["update_id"] + 1), "timeout": "0"}
    )
    assert again.json()["result"] == []
    assert server.pending_updates == 0


def test_group_and_forum_topic_updates(api: httpx.Client, server: BotApiServer) -> None:
    server.add_chat(-100200, "supergroup", title="Sahel desk", is_forum=True)
    server.send_text(-100200, "/subscribe", user_id=8, thread_id=42)
    message = api.post("getUpdates").json()["result"][0]["message"]
    assert message["chat"]["type"] == "supergroup" and message["chat"]["is_forum"]
    assert message["message_thread_id"] == 42 and message["is_topic_message"]
    assert message["from"]["id"] == 8


def test_commands_are_validated_and_stored(api: httpx.Client, server: BotApiServer) -> None:
    good = [{"command": "start", "description": "Start"}]
    assert api.post("setMyCommands", data={"commands": json.dumps(good)}).status_code == 200
    assert api.post("getMyCommands").json()["result"] == good
    bad = [{"command": "Bad-Name", "description": "x"}]
    assert api.post("setMyCommands", data={"commands": json.dumps(bad)}).status_code == 400
    assert server.commands == good


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, Any], str | None]]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(
            (json.loads(body), self.headers.get("X-Telegram-Bot-Api-Secret-Token"))
        )
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


def test_webhook_blocks_get_updates_and_pushes(server: BotApiServer) -> None:
    class Hook(_Hook):
        received: ClassVar[list[tuple[dict[str, Any], str | None]]] = []

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        with httpx.Client(base_url=f"{server.base_url}/bot{server.token}/") as api:
            url = f"http://127.0.0.1:{hook.server_address[1]}/hook"
            api.post("setWebhook", data={"url": url, "secret_token": "s3cret"})
            assert api.post("getUpdates").status_code == 409
            server.send_text(12, "/help")
            server.wait_updates_consumed(timeout=5)
            assert Hook.received[0][0]["message"]["text"] == "/help"
            assert Hook.received[0][1] == "s3cret"
            api.post("deleteWebhook")
            assert api.post("getUpdates").status_code == 200
    finally:
        hook.shutdown()
        hook.server_close()


def test_parse_html_plain_text() -> None:
    assert parse_html("a &lt;b&gt; &#8212; c") == "a <b> — c"
    with pytest.raises(HTMLParseError):
        parse_html("<b>")


# -- chats, members, buttons and edits (bot_api_chats) -----------------------------------


def keyboard(*rows: list[tuple[str, str]]) -> str:
    return json.dumps(
        {"inline_keyboard": [[{"text": t, "callback_data": d} for t, d in row] for row in rows]}
    )


def updates_of(api: httpx.Client, **params: str) -> list[dict[str, Any]]:
    found = api.post("getUpdates", data=params).json()["result"]
    if found:
        api.post("getUpdates", data={"offset": str(found[-1]["update_id"] + 1), "timeout": "0"})
    return list(found)


def test_a_pressed_button_is_a_callback_query_answered_once(
    api: httpx.Client, server: BotApiServer
) -> None:
    sent = send(api, 31, "Settings", reply_markup=keyboard([("Topics", "s:t"), ("Off", "s:o")]))
    message_id = sent.json()["result"]["message_id"]
    assert sent.json()["result"]["reply_markup"]["inline_keyboard"][0][1]["callback_data"] == "s:o"
    assert server.buttons(31, message_id) == [[("Topics", "s:t"), ("Off", "s:o")]]
    query_id = server.press(31, message_id, text="Topics", language_code="fr")
    query = updates_of(api)[0]["callback_query"]
    assert query["id"] == query_id and query["data"] == "s:t"
    assert query["from"] == {"id": 31, "is_bot": False, "first_name": "Tester",
                             "language_code": "fr"}  # fmt: skip
    assert query["message"]["message_id"] == message_id and query["message"]["text"] == "Settings"
    assert server.answer(query_id) is None
    good = api.post("answerCallbackQuery", data={"callback_query_id": query_id, "text": "Saved"})
    assert good.status_code == 200
    assert server.wait_answer(query_id).text == "Saved"
    again = api.post("answerCallbackQuery", data={"callback_query_id": query_id})
    assert again.status_code == 400 and "query ID is invalid" in again.json()["description"]
    unknown = api.post("answerCallbackQuery", data={"callback_query_id": "nope"})
    assert unknown.status_code == 400
    with pytest.raises(LookupError):
        server.press(31, message_id, text="Not there")
    forged = server.press(31, message_id, data="x" * 64, check=False)
    assert updates_of(api)[0]["callback_query"]["id"] == forged


def test_inline_keyboards_are_checked(api: httpx.Client) -> None:
    too_long = send(api, 32, "x", reply_markup=keyboard([("A", "é" * 33)]))  # 66 bytes
    assert too_long.status_code == 400
    assert too_long.json()["description"] == "Bad Request: BUTTON_DATA_INVALID"
    assert send(api, 32, "x", reply_markup=keyboard([("A", "é" * 32)])).status_code == 200
    no_text = send(api, 32, "x", reply_markup=keyboard([("", "d")]))
    assert no_text.json()["description"] == "Bad Request: BUTTON_TEXT_INVALID"


def test_edits_change_the_message_and_are_recorded(api: httpx.Client, server: BotApiServer) -> None:
    first = send(api, 33, "<b>Menu</b>", parse_mode="HTML", reply_markup=keyboard([("A", "a")]))
    message_id = first.json()["result"]["message_id"]
    base = {"chat_id": "33", "message_id": str(message_id)}
    edited = api.post(
        "editMessageText",
        data={**base, "text": "<i>Topics</i>", "parse_mode": "HTML",
              "reply_markup": keyboard([("B", "b")])},
    )  # fmt: skip
    assert edited.status_code == 200 and edited.json()["result"]["text"] == "Topics"
    assert server.message(33, message_id)["text"] == "Topics"
    assert server.buttons(33, message_id) == [[("B", "b")]]
    same = api.post(
        "editMessageText",
        data={**base, "text": "<i>Topics</i>", "parse_mode": "HTML",
              "reply_markup": keyboard([("B", "b")])},
    )  # fmt: skip
    assert same.status_code == 400 and "message is not modified" in same.json()["description"]
    markup = api.post(
        "editMessageReplyMarkup", data={**base, "reply_markup": keyboard([("C", "c")])}
    )
    assert markup.status_code == 200 and server.buttons(33, message_id) == [[("C", "c")]]
    assert server.message(33, message_id)["text"] == "Topics"
    plain = api.post("editMessageText", data={**base, "text": "Done"})  # no markup: keyboard gone
    assert plain.status_code == 200 and server.buttons(33, message_id) == []
    edits = server.wait_edits(33, message_id, count=3)
    assert [(e.method, e.plain) for e in edits] == [
        ("editmessagetext", "Topics"), ("editmessagereplymarkup", "Topics"),
        ("editmessagetext", "Done"),
    ]  # fmt: skip
    assert edits[0].text == "<i>Topics</i>" and edits[1].reply_markup is not None
    assert [m.plain for m in server.sent(33)] == ["Menu"]  # sends stay as they were sent
    missing = api.post("editMessageText", data={"chat_id": "33", "message_id": "999", "text": "x"})
    assert missing.json()["description"] == "Bad Request: message to edit not found"
    server.send_text(33, "a user's message")
    users = updates_of(api)[0]["message"]["message_id"]
    theirs = api.post("editMessageText", data={"chat_id": "33", "message_id": str(users),
                                               "text": "x"})  # fmt: skip
    assert theirs.json()["description"] == "Bad Request: message can't be edited"
    bad_html = api.post("editMessageText", data={**base, "text": "<b>x", "parse_mode": "HTML"})
    assert bad_html.status_code == 400


def test_replies_silence_and_previews_are_recorded(api: httpx.Client, server: BotApiServer) -> None:
    first = send(api, 34, "alert").json()["result"]["message_id"]
    reply = send(
        api, 34, "follow-up", reply_parameters=json.dumps({"message_id": first}),
        disable_notification="true", link_preview_options=json.dumps({"is_disabled": True}),
    )  # fmt: skip
    assert reply.json()["result"]["reply_to_message"]["text"] == "alert"
    legacy = send(api, 34, "old style", reply_to_message_id=str(first))
    assert legacy.status_code == 200
    sent = server.sent(34)
    assert [(m.reply_to, m.silent, m.preview_disabled) for m in sent] == [
        (None, False, False), (first, True, True), (first, False, False)
    ]  # fmt: skip
    gone = send(api, 34, "x", reply_parameters=json.dumps({"message_id": 999}))
    assert gone.json()["description"] == "Bad Request: message to be replied not found"
    allowed = send(api, 34, "x", reply_parameters=json.dumps(
        {"message_id": 999, "allow_sending_without_reply": True}))  # fmt: skip
    assert allowed.status_code == 200 and server.sent(34)[-1].reply_to is None
    server.send_text(34, "question")
    asked = updates_of(api)[0]["message"]["message_id"]
    answer = send(api, 34, "answer", reply_parameters=json.dumps({"message_id": asked}))
    assert answer.status_code == 200 and server.sent(34)[-1].reply_to == asked


def test_chat_members_admins_and_creator(api: httpx.Client, server: BotApiServer) -> None:
    server.add_chat(-500, "group", title="Desk")
    server.set_admins(-500, [51, 52], creator=50)

    def status(user_id: int) -> str:
        answer = api.post("getChatMember", data={"chat_id": "-500", "user_id": str(user_id)})
        assert answer.status_code == 200
        return str(answer.json()["result"]["status"])

    assert [status(u) for u in (50, 51, 52, 53)] == [
        "creator", "administrator", "administrator", "member"
    ]  # fmt: skip
    admin = api.post("getChatMember", data={"chat_id": "-500", "user_id": "51"}).json()["result"]
    assert admin["can_change_info"] is True and admin["user"]["id"] == 51
    server.set_admins(-500, [53])
    assert [status(u) for u in (50, 51, 53)] == ["creator", "member", "administrator"]
    admins = api.post("getChatAdministrators", data={"chat_id": "-500"}).json()["result"]
    assert sorted(a["user"]["id"] for a in admins) == [50, 53]
    unknown = api.post("getChatMember", data={"chat_id": "-999", "user_id": "1"})
    assert unknown.json()["description"] == "Bad Request: chat not found"
    assert len(server.calls("getChatMember")) == 9


def test_messages_carry_language_code_and_anonymous_admins(
    api: httpx.Client, server: BotApiServer
) -> None:
    server.send_text(35, "/start", language_code="fr")
    server.send_text(-36, "/settings", anonymous=True)
    private, group = (u["message"] for u in updates_of(api))
    assert private["from"]["language_code"] == "fr"
    assert group["from"]["username"] == "GroupAnonymousBot"
    assert group["sender_chat"]["id"] == -36


def test_channels_posts_and_the_bot_added_or_removed(
    api: httpx.Client, server: BotApiServer
) -> None:
    channel = -1003000
    server.add_bot(channel, by=60, status="administrator", chat_type="channel", title="Wire",
                   language_code="fr")  # fmt: skip
    server.send_text(channel, "/subscribe")
    added, post = updates_of(api)
    change = added["my_chat_member"]
    assert change["chat"] == {"id": channel, "type": "channel", "title": "Wire"}
    assert change["from"]["id"] == 60 and change["from"]["language_code"] == "fr"
    assert change["old_chat_member"]["status"] == "left"
    assert change["new_chat_member"]["status"] == "administrator"
    assert change["new_chat_member"]["user"]["id"] == server.bot_id
    assert "from" not in post["channel_post"]
    assert post["channel_post"]["sender_chat"]["id"] == channel
    sent = send(api, channel, "alert").json()["result"]
    assert sent["sender_chat"]["id"] == channel
    me = {"chat_id": str(channel), "user_id": str(server.bot_id)}
    assert api.post("getChatMember", data=me).json()["result"]["status"] == "administrator"
    server.add_bot(channel, by=60, status="member")
    assert send(api, channel, "x").json()["description"] == (
        "Bad Request: need administrator rights in the channel chat"
    )
    server.remove_bot(channel, by=60)
    assert send(api, channel, "x").status_code == 403
    server.remove_bot(-37, by=61, status="kicked")
    assert send(api, -37, "x").json()["description"] == (
        "Forbidden: bot was kicked from the group chat"
    )
    kinds = [next(k for k in u if k != "update_id") for u in updates_of(api)]
    assert kinds == ["my_chat_member", "my_chat_member", "my_chat_member"]


def test_allowed_updates_drop_other_kinds(api: httpx.Client, server: BotApiServer) -> None:
    sent = send(api, 38, "menu", reply_markup=keyboard([("A", "a")])).json()["result"]
    server.send_text(38, "hello")
    server.press(38, sent["message_id"], data="a")
    got = updates_of(api, allowed_updates=json.dumps(["message"]))
    assert [next(k for k in u if k != "update_id") for u in got] == ["message"]
    server.press(38, sent["message_id"], data="a")  # the setting persists
    assert updates_of(api) == []
    assert len(server.updates.dropped) == 2
    server.press(38, sent["message_id"], data="a")
    got = updates_of(api, allowed_updates=json.dumps([]))  # [] is Telegram's default
    assert "callback_query" in got[0]


def test_commands_per_scope_and_language(api: httpx.Client, server: BotApiServer) -> None:
    english = [{"command": "settings", "description": "Your settings"}]
    french = [{"command": "parametres", "description": "Vos réglages"}]
    admins = json.dumps({"type": "all_chat_administrators"})
    assert api.post("setMyCommands", data={"commands": json.dumps(english)}).status_code == 200
    fr = {"commands": json.dumps(french), "language_code": "fr"}
    assert api.post("setMyCommands", data=fr).status_code == 200
    assert api.post("setMyCommands", data={**fr, "scope": admins}).status_code == 200
    assert server.commands == english
    assert server.commands_for(language_code="fr") == french
    assert server.commands_for({"type": "all_chat_administrators"}, "fr") == french
    assert server.commands_for({"type": "all_chat_administrators"}) == []
    got = api.post("getMyCommands", data={"language_code": "fr"}).json()["result"]
    assert got == french
    bad = api.post("setMyCommands", data={**fr, "language_code": "french"})
    assert bad.json()["description"] == "Bad Request: invalid language code specified"
    no_chat = api.post("setMyCommands", data={**fr, "scope": json.dumps({"type": "chat"})})
    assert no_chat.status_code == 400
    api.post("deleteMyCommands", data={"language_code": "fr"})
    assert server.commands_for(language_code="fr") == [] and server.commands == english
    assert len(server.command_sets) == 2
