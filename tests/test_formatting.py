"""Markdown bodies as Slack mrkdwn, Block Kit, HTML and plain text, with hostile text escaped."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from cadence.delivery.channels.base import Outgoing, Recipient
from cadence.delivery.formatting import to_html, to_mrkdwn, to_text
from cadence.delivery.formatting.email import email_parts
from cadence.delivery.formatting.slack import (
    SECTION_LIMIT,
    delivery_id_from_value,
    slack_message,
    slack_metadata,
)
from cadence.messages.markdown import to_html_and_text
from cadence.rendering import render

HOSTILE = (
    "<script>alert(1)</script> <@U123> <!channel> <!here|here> &lt;!everyone&gt; "
    "a & b <https://evil.example|click>"
)
ACK = "https://cadence.example/ack/abc.def-123"
#: A `<` in mrkdwn is only ever the start of a link Cadence wrote.
GENERATED_LINK = re.compile(r"<(?:https?://|mailto:)[^\s<>|]*(?:\|[^<>]*)?>", re.IGNORECASE)


def _out(body: str = "Hello", **changes: Any) -> Outgoing:
    fields: dict[str, Any] = {
        "delivery_id": 123,
        "recipient": Recipient(7, "jo@example.com", "Jo Bloggs", "U999", "Europe/London"),
        "title": "Refund policy",
        "body": body,
        "ack_url": ACK,
    }
    fields.update(changes)
    return Outgoing(**fields)


def _stray_angles(mrkdwn: str) -> str:
    return GENERATED_LINK.sub("", mrkdwn)


# --- Slack mrkdwn ---------------------------------------------------------------------------


def test_mrkdwn_escapes_mentions_scripts_and_ampersands() -> None:
    out = to_mrkdwn(HOSTILE)
    assert "<!channel>" not in out
    assert "<!here" not in out
    assert "<!everyone>" not in out
    assert "<@U123>" not in out
    assert "<script>" not in out
    assert "&lt;!channel&gt;" in out
    assert "&lt;@U123&gt;" in out
    assert "&lt;!everyone&gt;" in out
    assert "a &amp; b" in out
    assert "<" not in _stray_angles(out)
    # An autolink is Markdown's own syntax, so it becomes a real (escaped) link.
    assert out.endswith("<https://evil.example%7Cclick|https://evil.example\u2223click>")


def test_mrkdwn_links_escape_pipe_and_angle_in_text_and_url() -> None:
    out = to_mrkdwn("[a|b>c & <!channel>](https://x.example/p|q>r?a=1&b=2)")
    assert out == "<https://x.example/p%7Cq%3Er?a=1&amp;b=2|a\u2223b&gt;c &amp; &lt;!channel&gt;>"
    assert "<" not in _stray_angles(out)


def test_mrkdwn_link_inside_link_text_stays_text() -> None:
    assert to_mrkdwn("[see <https://a.example>](https://b.example)") == (
        "<https://b.example|see https://a.example>"
    )


def test_mrkdwn_refuses_links_that_are_not_web_or_mail() -> None:
    out = to_mrkdwn("[x](javascript:alert(1)) [y](data:text/html,hi) [z](/relative)")
    assert "<javascript" not in out
    assert "<" not in out
    assert to_mrkdwn("[mail me](mailto:a@example.com)") == "<mailto:a@example.com|mail me>"


def test_mrkdwn_formatting() -> None:
    md = (
        "# Big news\n\n"
        "**bold** *italic* _also_ ~~gone~~ `x < y` [site](https://example.com)\n"
        "second line\n\n"
        "- one\n- two\n  - nested\n\n"
        "3. three\n4. four\n\n"
        "> quoted\n> more\n\n"
        "```python\nif a < b:\n    pass\n```"
    )
    assert to_mrkdwn(md).split("\n\n") == [
        "*Big news*",
        "*bold* _italic_ _also_ ~gone~ `x &lt; y` <https://example.com|site>\nsecond line",
        "\u2022 one\n\u2022 two\n  \u25e6 nested",
        "3. three\n4. four",
        "> quoted\n> more",
        "```\nif a &lt; b:\n    pass\n```",
    ]


def test_mrkdwn_nested_emphasis_does_not_double_markers() -> None:
    assert to_mrkdwn("**bold and **more** bold**") == "*bold and more bold*"
    assert to_mrkdwn("## A **strong** heading") == "*A strong heading*"


def test_mrkdwn_stray_formatting_characters_cannot_format() -> None:
    out = to_mrkdwn(r"\*not bold\* \_not italic\_ \~no\~ snake_case_name a_b@example.com 5 * 3")
    assert out == (
        "\u2217not bold\u2217 \uff3fnot italic\uff3f \u223cno\u223c "
        "snake_case_name a_b@example.com 5 * 3"
    )


@given(st.text())
def test_mrkdwn_never_has_a_raw_angle_bracket_outside_generated_links(text: str) -> None:
    stray = _stray_angles(to_mrkdwn(text))
    assert "<" not in stray
    # Any other `>` is a quote marker Cadence wrote; the author's own are all `&gt;`.
    assert re.search(r">[^ >\n]", stray) is None


PIECES = ["<", ">", "&", "!channel", "@U1", "|", "[", "](", ")", "http://a", " ", "\n", "*", "`"]


@given(st.lists(st.sampled_from(PIECES)))
def test_mrkdwn_built_from_hostile_pieces_never_pings(pieces: list[str]) -> None:
    out = to_mrkdwn("".join(pieces))
    stray = _stray_angles(out)
    assert "<" not in stray
    assert "<!" not in out
    assert "<@" not in out


# --- HTML and plain text ---------------------------------------------------------------------


def test_html_escapes_raw_html() -> None:
    out = to_html(HOSTILE + "\n\n<img src=x onerror=alert(1)>")
    assert "<script" not in out
    assert "<img" not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert "&lt;!channel&gt;" in out


def test_html_links_are_only_web_or_mail() -> None:
    out = to_html(
        "[a](javascript:alert(1)) [b](JAVASCRIPT:alert(1)) [c](vbscript:x) [d](data:text/html,x) "
        "[e](file:///etc/passwd) [ok](https://example.com/?a=1&b=2) [m](mailto:x@example.com)"
    )
    assert out.count("<a ") == 2
    assert 'href="https://example.com/?a=1&amp;b=2"' in out
    assert 'href="mailto:x@example.com"' in out
    assert 'href="javascript' not in out.lower()


def test_links_and_images_with_empty_addresses_keep_only_their_text() -> None:
    md = "[click]() and ![pic <b>]()"
    assert to_html(md) == "<p>click and pic &lt;b&gt;</p>\n"
    assert to_mrkdwn(md) == "click and pic &lt;b&gt;"
    assert to_text(md) == "click and pic <b>"
    assert "<" not in to_mrkdwn("[]()")


def test_one_parse_gives_the_same_html_and_text() -> None:
    md = "Hi **Jo** <b>\n\n- [a](https://example.com)\n- b"
    assert to_html_and_text(md) == (to_html(md), to_text(md))


def test_html_formatting_tables_and_strikethrough() -> None:
    out = to_html("**b** ~~s~~\n\n| a | b |\n|---|---|\n| 1 | 2 |")
    assert "<strong>b</strong>" in out
    assert "<s>s</s>" in out
    assert "<table>" in out


def test_text_spells_out_links_and_keeps_structure() -> None:
    out = to_text("# Title\n\nRead [the policy](https://example.com/p) now.\n\n- a\n- b")
    assert out == ("Title\n=====\n\nRead the policy (https://example.com/p) now.\n\n- a\n- b")


# --- Block Kit ---------------------------------------------------------------------------------


def _buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    [actions] = [b for b in blocks if b["type"] == "actions"]
    elements: list[dict[str, Any]] = actions["elements"]
    return elements


def test_slack_message_blocks_have_header_body_and_both_buttons() -> None:
    text, blocks = slack_message(_out("Hi **Jo**"))
    assert json.loads(json.dumps(blocks)) == blocks
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Refund policy", "emoji": True},
    }
    assert blocks[1] == {"type": "section", "text": {"type": "mrkdwn", "text": "Hi *Jo*"}}
    ack, question = _buttons(blocks)
    assert ack["action_id"] == "cadence_ack"
    assert ack["style"] == "primary"
    assert ack["text"]["text"] == "Got it"
    assert question["action_id"] == "cadence_question"
    assert question["text"]["text"] == "I have a question"
    assert ack["value"] == question["value"] == "delivery:123"
    assert delivery_id_from_value(ack["value"]) == 123
    assert text == "Refund policy\n\nHi *Jo*"


def test_slack_message_without_question_button() -> None:
    _, blocks = slack_message(_out(), question_enabled=False)
    assert [b["action_id"] for b in _buttons(blocks)] == ["cadence_ack"]


def test_slack_message_hostile_title_body_and_note_stay_valid_and_escaped() -> None:
    title = 'Quote " backslash \\ brace } <!channel>\nline two'
    text, blocks = slack_message(_out(HOSTILE, title=title, leader_note='Me & "<@U1>"'))
    dumped = json.dumps(blocks)
    assert "<!channel>" not in text
    assert blocks[0]["text"]["text"] == 'Quote " backslash \\ brace } <!channel> line two'
    for block in blocks[1:]:
        for mrkdwn in [block.get("text", {}).get("text", "")] + [
            e.get("text", "") for e in block.get("elements", []) if e.get("type") == "mrkdwn"
        ]:
            assert "<" not in _stray_angles(mrkdwn)
    assert "<@U1>" not in dumped
    note = [b for b in blocks if b["type"] == "context"]
    assert note == [
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": '*A note from your team leader:* Me &amp; "&lt;@U1&gt;"',
                }
            ],
        }
    ]


def test_long_title_is_truncated_for_the_header() -> None:
    _, blocks = slack_message(_out(title="word " * 100))
    header = blocks[0]["text"]["text"]
    assert len(header) <= 150
    assert header.endswith("\u2026")


def test_long_body_is_split_into_sections_under_the_limit_on_paragraphs() -> None:
    paragraphs = [f"Paragraph {i} " + "lorem ipsum & dolor " * 40 for i in range(30)]
    _, blocks = slack_message(_out("\n\n".join(paragraphs)))
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert len(sections) > 1
    assert all(0 < len(s) <= SECTION_LIMIT for s in sections)
    rejoined = "\n\n".join(sections)
    assert rejoined == to_mrkdwn("\n\n".join(paragraphs))


def test_one_huge_paragraph_and_code_block_split_safely() -> None:
    long_words = " ".join(f"[w{i}](https://example.com/{i}) &" for i in range(600))
    code = "```\n" + "\n".join(f"line {i} <x>" for i in range(600)) + "\n```"
    _, blocks = slack_message(_out(long_words + "\n\n" + code))
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert all(len(s) <= SECTION_LIMIT for s in sections)
    for section in sections:
        # No link or entity is cut in half.
        assert "<" not in _stray_angles(section)
        assert re.search(r"&(?!amp;|lt;|gt;)", section) is None
        # Every piece of the code block is still a closed code block.
        assert section.count("```") % 2 == 0


def test_enormous_body_stays_within_slacks_block_count() -> None:
    body = "\n\n".join("&" * 2000 for _ in range(100))
    _, blocks = slack_message(_out(body, leader_note="note"))
    assert len(blocks) <= 50
    assert blocks[-2]["type"] == "context"
    assert "too long" in blocks[-3]["text"]["text"]


def test_slack_metadata_names_the_delivery() -> None:
    assert slack_metadata(_out()) == {
        "event_type": "cadence_delivery",
        "event_payload": {"delivery_id": 123},
    }


# --- email -----------------------------------------------------------------------------------


def test_email_parts_carry_the_ack_link_in_text_and_html() -> None:
    subject, text, html = email_parts(_out("Read **this**.\n\n- one", leader_note="Do it"))
    assert subject == "Refund policy"
    assert f"\n{ACK}\n" in text
    assert "Got a question? Use the same link." in text
    assert "A note from your team leader:\nDo it" in text
    assert f'href="{ACK}"' in html
    assert ">Acknowledge</a>" in html
    assert "Got a question? Use the same link" in html
    assert "<strong>this</strong>" in html
    assert "<li>one</li>" in html


def test_email_html_is_escaped_and_styles_are_inlined() -> None:
    subject, text, html = email_parts(
        _out(HOSTILE, title="A <b>bold</b>\nclaim & more", leader_note="<script>x()</script>")
    )
    assert subject == "A <b>bold</b> claim & more"
    assert "<script" not in html
    assert "<b>" not in html
    assert "A &lt;b&gt;bold&lt;/b&gt; claim &amp; more" in html
    assert "&lt;script&gt;x()&lt;/script&gt;" in html
    assert "<style" not in html
    assert re.search(r'<a class="button" href="[^"]+" style="[^"]*background-color', html)
    # The text part is plain text: nothing there is interpreted.
    assert "<script>alert(1)</script>" in text


def test_log_template_keeps_its_shape() -> None:
    recipient = Recipient(7, "jo@example.com", "Jo Bloggs", None, "Europe/London")
    out = render("log/message.txt", person=recipient, title="T <x>", body="Body & more")
    assert out == "To: Jo Bloggs <jo@example.com> (Europe/London)\nSubject: T <x>\n\nBody & more"
