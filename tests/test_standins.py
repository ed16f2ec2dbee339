"""The Slack and SMTP stand-ins, driven by the real clients Cadence uses (slack-sdk, smtplib).

Other tests trust these stand-ins to behave like the services at the edge, so their own
behaviour (auth, paging, metadata, 429s, injected failures, TLS, dropped connections) is
pinned here.
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import ssl
import urllib.request
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import aiohttp
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from cadence.bench.slack_standin import SlackStandIn, SlackStandInProcess, SlackUser
from cadence.bench.smtp_standin import SmtpStandIn
from cadence.delivery.channels.slack_app import NEEDED_SCOPES

TOKEN = "xoxb-test-token"
USERS = [
    SlackUser("U001", "ada@example.com", name="Ada"),
    SlackUser("U002", "grace@example.com", name="Grace"),
    SlackUser("U003", "gone@example.com", deleted=True),
    SlackUser("U004", "linus@example.com"),
    SlackUser("U005", "barbara@example.com"),
]
METADATA = {"event_type": "cadence_delivery", "event_payload": {"delivery_id": 42}}


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn(token=TOKEN) as standin:
        yield standin


def client(standin: SlackStandIn | SlackStandInProcess, **kwargs: Any) -> WebClient:
    return WebClient(token=TOKEN, base_url=standin.base_url, **kwargs)


def slack_error(call: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        call()
    return info.value


# Slack stand-in -------------------------------------------------------------------------------


def test_the_token_is_checked(slack: SlackStandIn) -> None:
    assert slack.base_url.endswith("/api/")
    assert client(slack).auth_test()["user_id"]

    wrong = WebClient(token="xoxb-wrong", base_url=slack.base_url)
    assert slack_error(wrong.auth_test).response["error"] == "invalid_auth"
    missing = WebClient(base_url=slack.base_url)
    error = slack_error(lambda: missing.chat_postMessage(channel="U001", text="hi"))
    assert error.response.status_code == 200
    assert error.response["error"] == "not_authed"
    assert slack.stats().posted == 0


def test_granted_scopes_are_named_in_a_header_and_gate_the_methods(slack: SlackStandIn) -> None:
    web = client(slack)
    assert web.auth_test().headers["x-oauth-scopes"] == ",".join(NEEDED_SCOPES)
    assert slack.configure()["scopes"] == list(NEEDED_SCOPES)

    assert slack.configure(scopes=["chat:write"])["scopes"] == ["chat:write"]
    posted = web.chat_postMessage(channel="U001", text="hi")
    assert posted.headers["x-oauth-scopes"] == "chat:write"
    refused = slack_error(lambda: web.users_list(limit=10)).response
    assert (refused["error"], refused["needed"], refused["provided"]) == (
        "missing_scope", "users:read", "chat:write"
    )  # fmt: skip
    assert refused.headers["x-oauth-scopes"] == "chat:write"
    # An answer to a refused token names no scopes: there is no token to have them.
    wrong = WebClient(token="xoxb-wrong", base_url=slack.base_url)
    assert "x-oauth-scopes" not in slack_error(wrong.auth_test).response.headers
    with pytest.raises(ValueError, match="list of scope names"):
        slack.configure(scopes="chat:write")

    slack.reset()
    assert web.auth_test().headers["x-oauth-scopes"] == ",".join(NEEDED_SCOPES)
    with SlackStandIn(token=TOKEN, scopes=["users:read"]) as narrow:
        answer = client(narrow).auth_test()
        assert answer.headers["x-oauth-scopes"] == "users:read"
        narrow.reset()
        assert narrow.configure()["scopes"] == ["users:read"]


def test_posted_metadata_comes_back_from_history_newest_first(slack: SlackStandIn) -> None:
    web = client(slack)
    first = web.chat_postMessage(channel="U001", text="first", metadata=METADATA)
    second = web.chat_postMessage(channel="DU001", text="second")
    assert first["channel"] == second["channel"] == "DU001"
    assert float(second["ts"]) > float(first["ts"])

    opened = web.conversations_open(users="U001")
    assert opened["channel"]["id"] == "DU001"
    history = web.conversations_history(channel="DU001", include_all_metadata=True)
    assert [m["text"] for m in history["messages"]] == ["second", "first"]
    assert history["messages"][1]["metadata"] == METADATA
    assert history["messages"][1]["ts"] == first["ts"]
    plain = web.conversations_history(channel="DU001")
    assert all("metadata" not in m for m in plain["messages"])

    [recorded, *_] = slack.requests("chat.postMessage")
    assert recorded.params["metadata"] == METADATA
    assert "token" not in recorded.params
    assert slack.messages("U001")[0]["metadata"] == METADATA


def test_form_bodies_are_read_like_json_ones(slack: SlackStandIn) -> None:
    web = client(slack)
    posted = web.api_call(
        "chat.postMessage",
        data={"channel": "C123", "text": "as a form", "metadata": json.dumps(METADATA)},
    )
    assert posted["channel"] == "C123"
    history = web.api_call(
        "conversations.history",
        http_verb="GET",
        params={"channel": "C123", "include_all_metadata": "true"},
    )
    assert history["messages"][0]["metadata"] == METADATA
    updated = web.chat_update(channel="C123", ts=posted["ts"], text="edited")
    assert updated["text"] == "edited"
    assert slack.messages("C123")[0]["text"] == "edited"


def test_views_open_needs_a_trigger_and_answers_with_the_view(slack: SlackStandIn) -> None:
    view = {"type": "modal", "callback_id": "cadence_team_note", "title": {"type": "plain_text",
            "text": "Note"}, "blocks": []}  # fmt: skip
    opened = client(slack).views_open(trigger_id="1.2.3", view=view)
    assert opened["view"]["callback_id"] == "cadence_team_note" and opened["view"]["id"]
    [recorded] = slack.requests("views.open")
    assert recorded.params["trigger_id"] == "1.2.3"
    missing = slack_error(lambda: client(slack).views_open(trigger_id="", view=view))
    assert missing.response["error"] == "invalid_arguments"


def test_users_list_pages_and_lookup_by_email(slack: SlackStandIn) -> None:
    slack.configure(users=USERS)
    web = client(slack)
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        page = web.users_list(limit=2, cursor=cursor)
        pages += 1
        seen.extend(page["members"])
        cursor = page["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert pages == 3
    assert [m["id"] for m in seen] == [u.id for u in USERS]
    assert seen[0]["profile"]["email"] == "ada@example.com"
    assert [m["id"] for m in seen if m["deleted"]] == ["U003"]

    assert web.users_lookupByEmail(email="Grace@Example.com")["user"]["id"] == "U002"
    error = slack_error(lambda: web.users_lookupByEmail(email="nobody@example.com"))
    assert error.response["error"] == "users_not_found"


def test_a_directory_refuses_unknown_and_deleted_users(slack: SlackStandIn) -> None:
    slack.configure(users=USERS)
    web = client(slack)
    assert web.chat_postMessage(channel="U001", text="hi")["ok"]
    unknown = slack_error(lambda: web.chat_postMessage(channel="U999", text="hi"))
    assert unknown.response["error"] == "channel_not_found"
    deleted = slack_error(lambda: web.chat_postMessage(channel="DU003", text="hi"))
    assert deleted.response["error"] == "account_inactive"
    assert slack_error(lambda: web.conversations_open(users="U999")).response["error"] == (
        "user_not_found"
    )
    stats = slack.stats()
    assert stats.posted == 1
    assert stats.errors == {"channel_not_found": 1, "account_inactive": 1, "user_not_found": 1}

    slack.reset()
    assert web.chat_postMessage(channel="U999", text="accepted again")["ok"]


def test_over_the_rate_limit_answers_429_with_retry_after(slack: SlackStandIn) -> None:
    slack.configure(rate_per_minute=60, burst=2)
    web = client(slack)
    web.chat_postMessage(channel="U001", text="1")
    web.chat_postMessage(channel="U001", text="2")
    error = slack_error(lambda: web.chat_postMessage(channel="U001", text="3"))
    assert error.response.status_code == 429
    assert error.response["error"] == "ratelimited"
    assert int(error.response.headers["Retry-After"]) >= 1
    assert web.auth_test()["ok"]  # other methods are not limited
    stats = slack.stats()
    assert (stats.ratelimited, stats.posted) == (1, 2)
    assert stats.by_method_status["chat.postMessage"] == {200: 2, 429: 1}


def test_injected_failures_then_normal_answers(slack: SlackStandIn) -> None:
    web = client(slack)
    slack.fail_next(2)
    slack.fail_next(1, error="user_not_found", method="chat.postMessage")
    for _ in range(2):
        assert slack_error(web.auth_test).response.status_code == 500
    error = slack_error(lambda: web.chat_postMessage(channel="U001", text="hi"))
    assert (error.response.status_code, error.response["error"]) == (200, "user_not_found")
    assert web.chat_postMessage(channel="U001", text="hi")["ok"]
    assert [r.status for r in slack.requests()] == [500, 500, 200, 200]
    assert slack.stats().by_status == {500: 2, 200: 2}


def test_a_stall_makes_a_client_time_out(slack: SlackStandIn) -> None:
    slack.fail_next(1, stall=1.5)
    impatient = client(slack, timeout=1, retry_handlers=[])
    with pytest.raises(TimeoutError):
        impatient.chat_postMessage(channel="U001", text="slow")
    assert client(slack).chat_postMessage(channel="U001", text="fast")["ok"]


def test_async_client_with_many_calls_in_flight(slack: SlackStandIn) -> None:
    async def post_all() -> list[str]:
        async with aiohttp.ClientSession() as session:
            web = AsyncWebClient(token=TOKEN, base_url=slack.base_url, session=session)
            answers = await asyncio.gather(
                *(web.chat_postMessage(channel=f"U{i:03d}", text=str(i)) for i in range(50))
            )
        return [str(a["ts"]) for a in answers]

    stamps = asyncio.run(post_all())
    assert len(set(stamps)) == 50
    stats = slack.stats()
    assert stats.posted == 50
    assert stats.first_post_wall is not None and stats.last_post_wall is not None
    assert len(slack.messages()) == 50


def test_control_api_over_http(slack: SlackStandIn) -> None:
    def control(path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{slack.url}/_control/{path}", data=data)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    control("configure", {"users": [u.to_dict() for u in USERS]})
    control("fail", {"count": 1, "error": "fatal_error"})
    web = client(slack)
    assert slack_error(web.auth_test).response["error"] == "fatal_error"
    assert web.users_lookupByEmail(email="ada@example.com")["ok"]
    assert [r["method"] for r in control("requests?method=users.lookupByEmail")] == [
        "users.lookupByEmail"
    ]
    assert control("stats")["errors"] == {"fatal_error": 1}
    with pytest.raises(urllib.error.HTTPError) as bad:
        control("configure", {"rate_limit": 5})
    with bad.value as refused:
        assert refused.code == 400


def test_out_of_process_stand_in_through_the_control_api() -> None:
    slack = SlackStandInProcess(token=TOKEN, users=USERS)
    with slack:
        assert slack.pid

        async def post() -> None:
            async with aiohttp.ClientSession() as session:
                web = AsyncWebClient(token=TOKEN, base_url=slack.base_url, session=session)
                await web.chat_postMessage(channel="U001", text="hi", metadata=METADATA)
                with pytest.raises(SlackApiError) as info:
                    await web.chat_postMessage(channel="U999", text="hi")
                assert info.value.response["error"] == "channel_not_found"
                slack.fail_next(1, status=503, method="chat.postMessage")
                with pytest.raises(SlackApiError) as info:
                    await web.chat_postMessage(channel="U002", text="hi")
                assert info.value.response.status_code == 503

        asyncio.run(post())
        stats = slack.stats()
        assert (stats.posted, stats.by_status) == (1, {200: 2, 503: 1})
        assert [r.status for r in slack.requests("chat.postMessage")] == [200, 200, 503]
        assert slack.messages("DU001")[0]["metadata"] == METADATA

        slack.configure(rate_per_minute=30, burst=1)
        web = client(slack)
        web.chat_postMessage(channel="U002", text="one")
        error = slack_error(lambda: web.chat_postMessage(channel="U002", text="two"))
        assert error.response.status_code == 429
        assert int(error.response.headers["Retry-After"]) >= 1

        assert slack.configure(scopes=["chat:write"])["scopes"] == ["chat:write"]
        assert web.auth_test().headers["x-oauth-scopes"] == "chat:write"

        slack.reset()
        assert slack.stats().requests == 0
        assert web.auth_test().headers["x-oauth-scopes"] == ",".join(NEEDED_SCOPES)
        assert slack_error(lambda: web.chat_postMessage(channel="U999", text="x")).response[
            "error"
        ] == ("channel_not_found")
    assert slack.returncode == 0


# SMTP stand-in --------------------------------------------------------------------------------


def multipart(to: str = "ada@example.com") -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = "Launch on Monday: what to tell customers"
    msg["From"] = "Comms <comms@example.com>"
    msg["To"] = to
    msg.set_content("Plain text: the launch is Monday.")
    msg.add_alternative("<p>HTML: the launch is <b>Monday</b>.</p>", subtype="html")
    return msg


def test_a_multipart_message_is_received_and_parsed() -> None:
    with SmtpStandIn() as smtp, smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
        client.send_message(multipart(), to_addrs=["ada@example.com", "grace@example.com"])
        [mail] = smtp.messages
        assert smtp.url == f"smtp://{smtp.host}:{smtp.port}?starttls=off"
    assert mail.mail_from == "comms@example.com"
    assert mail.rcpt_tos == ("ada@example.com", "grace@example.com")
    assert mail.subject == "Launch on Monday: what to tell customers"
    assert mail.message.get_content_type() == "multipart/alternative"
    assert mail.body() == "Plain text: the launch is Monday.\n"
    assert "<b>Monday</b>" in mail.body(("html",))
    assert not mail.tls and mail.username is None


def test_login_over_starttls() -> None:
    with SmtpStandIn(username="cadence", password="s3cret:/", starttls=True) as smtp:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
            client.ehlo()
            assert not client.has_extn("auth")  # AUTH only once the line is encrypted
            client.starttls(context=smtp.ssl_context)
            client.ehlo()
            with pytest.raises(smtplib.SMTPAuthenticationError) as bad:
                client.login("cadence", "wrong")
            assert bad.value.smtp_code == 535
            client.login("cadence", "s3cret:/")
            client.send_message(multipart())
        with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as anonymous:
            anonymous.starttls(context=smtp.ssl_context)
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                anonymous.send_message(multipart())
            assert refused.value.smtp_code == 530
        [mail] = smtp.messages
        assert mail.tls and mail.username == "cadence"
        assert smtp.sessions == 2
        assert smtp.url == (
            f"smtp://cadence:s3cret%3A%2F@{smtp.host}:{smtp.port}?starttls=require&verify=0"
        )


def test_implicit_tls() -> None:
    with (
        SmtpStandIn(username="u", password="p", implicit_tls=True) as smtp,
        smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=10, context=smtp.ssl_context) as client,
    ):
        client.login("u", "p")
        client.send_message(multipart())
        assert smtp.messages[0].tls
        assert smtp.url.startswith("smtps://u:p@")


def test_verification_off_also_connects() -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        SmtpStandIn(starttls=True, require_starttls=True) as smtp,
        smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client,
    ):
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.send_message(multipart())
        assert refused.value.smtp_code == 530
        client.starttls(context=context)
        client.send_message(multipart())
        assert len(smtp.messages) == 1


@pytest.mark.parametrize("code", [451, 550])
def test_refused_recipients_and_data(code: int) -> None:
    with SmtpStandIn() as smtp, smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
        smtp.fail_next("RCPT", code=code, message="no such luck")
        with pytest.raises(smtplib.SMTPRecipientsRefused) as rcpt:
            client.send_message(multipart())
        assert rcpt.value.recipients == {"ada@example.com": (code, b"no such luck")}

        smtp.fail_next("DATA", code=code)
        with pytest.raises(smtplib.SMTPDataError) as data:
            client.send_message(multipart())
        assert data.value.smtp_code == code

        client.send_message(multipart())
        assert len(smtp.messages) == 1


def test_a_dropped_connection_on_data() -> None:
    with SmtpStandIn(username="u", password="p", starttls=True) as smtp:
        smtp.fail_next("DATA", drop=True)
        with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
            client.starttls(context=smtp.ssl_context)
            client.login("u", "p")
            with pytest.raises(smtplib.SMTPServerDisconnected):
                client.send_message(multipart())
        assert smtp.messages == []
        with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
            client.starttls(context=smtp.ssl_context)
            client.login("u", "p")
            client.send_message(multipart())
        assert len(smtp.messages) == 1
        smtp.reset()
        assert smtp.messages == []
