"""Message bodies are Markdown; this turns them into HTML, Slack mrkdwn and plain text.

All three come from the same markdown-it-py parser, so a body means the same thing everywhere. Raw
HTML in a body is shown as text, never passed through, and links go only to http, https and
mailto addresses. A newline in the body is a line break in every output, because authors
write messages in a text box, not as wrapped Markdown.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

from markdown_it import MarkdownIt
from markdown_it.token import Token
from markdown_it.tree import SyntaxTreeNode

_ALLOWED_LINK = re.compile(r"(?:https?://[^/?#\s]+|mailto:\S+)", re.IGNORECASE)

#: Slack has no escape for its formatting characters, so stray ones become lookalikes.
_LOOKALIKES = {"*": "\u2217", "_": "\uff3f", "~": "\u223c", "`": "\u02cb"}
_MARKERS = re.compile(r"[*_~`]")


def allowed_link(url: str) -> bool:
    """Only web and mail links: no javascript:, data:, file: or relative paths."""
    return _ALLOWED_LINK.match(url.strip()) is not None


class _Markdown(MarkdownIt):
    def validateLink(self, url: str) -> bool:
        return allowed_link(url)


@functools.lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = _Markdown("commonmark", {"html": False, "breaks": True, "linkify": False})
    md.enable(["table", "strikethrough"])
    return md


def _without_empty_links(tokens: list[Token]) -> list[Token]:
    """Keep only the text of `[text]()` and `![alt]()`: markdown-it keeps those as a link
    and an image with an empty address."""
    for token in tokens:
        if token.children:
            kept: list[Token] = []
            dropping = False
            for child in token.children:
                if child.type == "link_open" and not allowed_link(str(child.attrGet("href"))):
                    dropping = True
                elif child.type == "link_close" and dropping:
                    dropping = False
                elif child.type == "image" and not allowed_link(str(child.attrGet("src"))):
                    kept.append(Token("text", "", 0, content=child.content))
                else:
                    kept.append(child)
            token.children = kept
    return tokens


def _tokens(md: str) -> list[Token]:
    return _without_empty_links(_parser().parse(md))


def _html(tokens: list[Token]) -> str:
    parser = _parser()
    rendered: str = parser.renderer.render(tokens, parser.options, {})
    return rendered


def to_html(md: str) -> str:
    """HTML for an email; raw HTML in `md` comes out escaped, as text."""
    return _html(_tokens(md))


def slack_escape(text: str) -> str:
    """The three characters Slack's mrkdwn reads as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _neutralise(text: str) -> str:
    """Swap formatting characters that could open or close Slack formatting for lookalikes.

    A marker between two letters (snake_case, an email address) or between two spaces
    (5 * 3) cannot format anything in Slack and is left alone.
    """

    def swap(match: re.Match[str]) -> str:
        at = match.start()
        before = text[at - 1] if at > 0 else " "
        after = text[at + 1] if at + 1 < len(text) else " "
        if (before.isalnum() and after.isalnum()) or (before.isspace() and after.isspace()):
            return match.group()
        return _LOOKALIKES[match.group()]

    return _MARKERS.sub(swap, text)


def _slack_url(href: str) -> str:
    return slack_escape(href.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E"))


def _slack_link(href: str, text: str) -> str:
    label = " ".join(text.replace("|", "\u2223").split())
    url = _slack_url(href)
    return f"<{url}|{label}>" if label not in ("", url) else f"<{url}>"


def _text_link(href: str, text: str) -> str:
    target = href.removeprefix("mailto:")
    label = " ".join(text.split())
    return target if label in ("", target, href) else f"{label} ({target})"


def _slack_heading(level: int, text: str) -> str:
    return f"*{text}*" if text else ""


def _text_heading(level: int, text: str) -> str:
    return f"{text}\n{('=' if level == 1 else '-') * len(text)}" if text else ""


def _slack_code(content: str) -> str:
    # A run of three backticks would end the block early.
    body = slack_escape(content).replace("```", "`\u200b``")
    return f"```\n{body}\n```"


def _text_code(content: str) -> str:
    return "\n".join(f"    {line}" for line in content.split("\n"))


@dataclass(frozen=True)
class _Style:
    """How one output format writes each kind of Markdown element."""

    text: Callable[[str], str]
    code: Callable[[str], str]
    strong: str
    em: str
    strike: str
    link: Callable[[str, str], str]
    heading: Callable[[int, str], str]
    code_block: Callable[[str], str]
    bullets: tuple[str, ...]
    rule: str


_MRKDWN = _Style(
    text=lambda s: _neutralise(slack_escape(s)),
    code=lambda s: "`" + slack_escape(s).replace("`", _LOOKALIKES["`"]) + "`",
    strong="*",
    em="_",
    strike="~",
    link=_slack_link,
    heading=_slack_heading,
    code_block=_slack_code,
    bullets=("\u2022", "\u25e6", "\u25aa"),
    rule="\u2500" * 10,
)

_TEXT = _Style(
    text=lambda s: s,
    code=lambda s: f"`{s}`",
    strong="*",
    em="_",
    strike="~",
    link=_text_link,
    heading=_text_heading,
    code_block=_text_code,
    bullets=("-", "-", "-"),
    rule="-" * 10,
)


class _Writer:
    """Walks markdown-it's syntax tree, writing one style."""

    def __init__(self, style: _Style) -> None:
        self.style = style
        self.open: dict[str, int] = {"strong": 0, "em": 0, "s": 0}
        self.list_depth = 0
        self.in_link = False

    def blocks(self, node: SyntaxTreeNode) -> list[str]:
        rendered = (self.block(child) for child in node.children)
        return [b for b in rendered if b]

    def block(self, node: SyntaxTreeNode) -> str:
        kind = node.type
        if kind in ("paragraph", "th", "td"):
            return "".join(self.inline(child) for child in node.children)
        if kind == "inline":
            return self.inline(node)
        if kind == "heading":
            self.open["strong"] += 1
            text = " ".join("".join(self.block(c) for c in node.children).split())
            self.open["strong"] -= 1
            return self.style.heading(int(node.tag[1:]), text)
        if kind in ("bullet_list", "ordered_list"):
            return self.list(node)
        if kind == "blockquote":
            inner = "\n".join(self.blocks(node))
            return "\n".join(f"> {line}".rstrip() for line in inner.split("\n"))
        if kind in ("fence", "code_block"):
            return self.style.code_block(node.content.rstrip("\n"))
        if kind == "hr":
            return self.style.rule
        if kind == "table":
            return "\n".join(self.row(tr) for part in node.children for tr in part.children)
        return self.style.text(node.content).strip()

    def list(self, node: SyntaxTreeNode) -> str:
        ordered = node.type == "ordered_list"
        number = int(node.attrs.get("start", 1)) if ordered else 0
        bullet = self.style.bullets[min(self.list_depth, len(self.style.bullets) - 1)]
        self.list_depth += 1
        items = []
        for item in node.children:
            marker = f"{number}." if ordered else bullet
            number += 1
            lines = "\n".join(self.blocks(item)).split("\n")
            indent = " " * (len(marker) + 1)
            items.append(
                "\n".join([f"{marker} {lines[0]}", *(f"{indent}{line}" for line in lines[1:])])
            )
        self.list_depth -= 1
        return "\n".join(items)

    def row(self, tr: SyntaxTreeNode) -> str:
        cells = [self.block(cell) for cell in tr.children]
        if tr.children and tr.children[0].type == "th":
            mark = self.style.strong
            cells = [f"{mark}{c}{mark}" if c else c for c in cells]
        return " | ".join(cells)

    def inline(self, node: SyntaxTreeNode) -> str:
        kind = node.type
        if kind == "inline":
            return "".join(self.inline(child) for child in node.children)
        if kind in ("text", "text_special", "html_inline"):
            return self.style.text(node.content)
        if kind in ("softbreak", "hardbreak"):
            return "\n"
        if kind == "code_inline":
            return self.style.code(node.content)
        if kind in self.open:
            marker = {"strong": self.style.strong, "em": self.style.em, "s": self.style.strike}
            self.open[kind] += 1
            inner = "".join(self.inline(child) for child in node.children)
            self.open[kind] -= 1
            if self.open[kind] or not inner.strip():
                return inner
            return f"{marker[kind]}{inner}{marker[kind]}"
        if kind in ("link", "image"):
            # An autolink inside a link's text is kept as text: links cannot nest.
            outer = self.in_link
            self.in_link = True
            text = "".join(self.inline(child) for child in node.children)
            self.in_link = outer
            href = str(node.attrs["href" if kind == "link" else "src"])
            return self.style.link(href, text) if allowed_link(href) and not outer else text
        return "".join(self.inline(child) for child in node.children)


def to_mrkdwn_blocks(md: str) -> list[str]:
    """Slack mrkdwn for each top-level block (paragraph, list, code block...).

    Kept apart so that a long message can be split between Block Kit sections without
    cutting through a list or a code block.
    """
    return _Writer(_MRKDWN).blocks(SyntaxTreeNode(_tokens(md)))


def to_mrkdwn(md: str) -> str:
    """Slack mrkdwn. `&`, `<` and `>` in the author's text are escaped, so nothing they
    write can mention @channel or a person, or hide a link; the only `<...>` in the result
    are the links written as Markdown."""
    return "\n\n".join(to_mrkdwn_blocks(md))


def to_text(md: str) -> str:
    """A plain-text version for the text part of an email: light markers, links spelled out."""
    return _text(_tokens(md))


def _text(tokens: list[Token]) -> str:
    return "\n\n".join(_Writer(_TEXT).blocks(SyntaxTreeNode(tokens)))


@functools.lru_cache(maxsize=1024)
def to_html_and_text(md: str) -> tuple[str, str]:
    """`to_html` and `to_text` from one parse, which is most of their cost. Cached because
    a body with no personal details reads the same for everyone it goes to."""
    tokens = _tokens(md)
    return _html(tokens), _text(tokens)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!<>|~&])")


def md_escape(text: str) -> str:
    """Text from the directory (a name, an email) placed in Markdown we write ourselves:
    every character Markdown could read as formatting is backslash-escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)
