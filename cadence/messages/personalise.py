"""Filling a person's details into a message body that its author wrote as a template.

Authors are staff, not administrators, so their templates run in Jinja2's sandbox with a
fixed set of names, no private attributes, a short list of filters and methods, and limits on
size and work. A template is checked once when the message is added (`check_template`) and
then rendered for every recipient (`personalise`), so rendering has to stay cheap.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jinja2 import StrictUndefined, Template, nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.meta import find_undeclared_variables
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from cadence.errors import InputError

if TYPE_CHECKING:
    from cadence.store.models import Person

TemplateContext = dict[str, dict[str, str]]

#: What a body may use, by object.
FIELDS: dict[str, tuple[str, ...]] = {
    "person": ("name", "first_name", "email", "team", "timezone"),
    "manager": ("name", "first_name", "email"),
    "message": ("title",),
}
#: Jinja's own helpers that stay available (`lipsum` is dropped: it writes filler text).
GLOBALS = ("range", "dict", "namespace", "cycler", "joiner")

MAX_SOURCE = 40_000
#: Characters one rendering may produce (and any one string it builds on the way).
MAX_OUTPUT = 40_000
#: Loop turns one rendering may take, all loops together (nested loops multiply).
MAX_LOOP_STEPS = 1_000
#: Loop turns, calls, lookups and operators (weighted by size) one rendering may use.
MAX_OPERATIONS = 20_000
#: A last guard on time; the counts above trip long before it on any template.
MAX_SECONDS = 2.0
MAX_INT_BITS = 4096

_FILTERS = (
    "abs", "capitalize", "count", "d", "default", "first", "float", "int", "last", "length",
    "list", "lower", "max", "min", "reverse", "round", "sort", "string", "sum", "title",
    "trim", "truncate", "unique", "upper", "urlencode", "wordcount",
)  # fmt: skip
_STR_METHODS = frozenset((
    "capitalize", "casefold", "count", "endswith", "find", "isalnum", "isalpha", "isdecimal",
    "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper", "join", "lower",
    "lstrip", "partition", "removeprefix", "removesuffix", "replace", "rfind", "rpartition",
    "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title",
    "upper",
))  # fmt: skip
_METHODS: tuple[tuple[type, frozenset[str]], ...] = (
    (str, _STR_METHODS),
    (dict, frozenset({"get", "items", "keys", "values"})),
    (list, frozenset({"count", "index"})),
    (tuple, frozenset({"count", "index"})),
)
_BUILTIN_VALUES = (str, bytes, dict, list, tuple, set, frozenset, int, float, range)
_SIZED = (str, bytes, list, tuple, dict, set, frozenset, range)
_STATEMENTS: dict[type[nodes.Node], str] = {
    nodes.Macro: "{% macro %}",
    nodes.CallBlock: "{% call %}",
    nodes.FilterBlock: "{% filter %}",
    nodes.AssignBlock: "{% set %}...{% endset %}",
    nodes.Include: "{% include %}",
    nodes.Import: "{% import %}",
    nodes.FromImport: "{% from ... import %}",
    nodes.Extends: "{% extends %}",
    nodes.Block: "{% block %}",
}
_JINJA_KWARGS = ("_loop_vars", "_block_vars")
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


class PersonaliseError(InputError):
    """A body could not be rendered for a recipient; `check_template` should have said so."""


class _LimitExceeded(Exception):
    """A template asked for more output or work than a message can need."""


@dataclass
class _Allowance:
    operations: int
    loop_steps: int
    deadline: float


_allowance: ContextVar[_Allowance | None] = ContextVar("cadence_template_allowance", default=None)


def _charge(cost: int = 1) -> None:
    allowance = _allowance.get()
    if allowance is None:
        return
    allowance.operations -= cost
    if allowance.operations < 0:
        raise _LimitExceeded(
            f"does too much work (more than {MAX_OPERATIONS:,} operations: loops, lookups, "
            "filters on long lists)"
        )
    if time.monotonic() > allowance.deadline:
        raise _LimitExceeded(f"takes longer than {MAX_SECONDS:g} seconds to render")


def _loop_step() -> None:
    allowance = _allowance.get()
    if allowance is not None:
        allowance.loop_steps -= 1
        if allowance.loop_steps < 0:
            raise _LimitExceeded(f"runs more than {MAX_LOOP_STEPS:,} loop steps")
    _charge()


def _range(*args: int) -> range:
    """Python's `range`, refused when it is longer than any loop may run; a range is lazy,
    so nothing is allocated or counted before this."""
    _charge()
    numbers = range(*args)
    if len(numbers) > MAX_LOOP_STEPS:
        raise _LimitExceeded(
            f"asks for range() of {len(numbers):,} numbers (at most {MAX_LOOP_STEPS:,}, "
            "the loop step limit)"
        )
    return numbers


def _size(value: Any) -> int:
    return len(value) if isinstance(value, _SIZED) else 0


def _too_large(size: int) -> None:
    if size > MAX_OUTPUT:
        raise _LimitExceeded(f"builds text longer than {MAX_OUTPUT:,} characters")


def _join(separator: str, items: Iterable[Any]) -> str:
    parts: list[str] = []
    size = 0
    for item in items:
        text = str(item)
        size += len(text) + (len(separator) if parts else 0)
        _too_large(size)
        parts.append(text)
    _charge(len(parts))
    return separator.join(parts)


def _replace(text: str, old: str, new: str, count: int = -1) -> str:
    found = len(text) + 1 if old == "" else text.count(old)
    if count >= 0:
        found = min(found, count)
    _too_large(len(text) + found * (len(new) - len(old)))
    return text.replace(old, new, count)


def _join_filter(value: Iterable[Any], d: str = "") -> str:
    return _join(str(d), value)


def _replace_filter(value: Any, old: str, new: str, count: int | None = None) -> str:
    return _replace(str(value), str(old), str(new), -1 if count is None else count)


def _charged(func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that pays for the size of what it is given (filters loop inside Python)."""

    @functools.wraps(func)
    def charged(*args: Any, **kwargs: Any) -> Any:
        _charge(1 + sum(_size(a) for a in args))
        return func(*args, **kwargs)

    return charged


def _check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse an operator whose result would be huge, before Python builds it."""
    ints = isinstance(left, int) and isinstance(right, int)
    if operator == "*":
        if isinstance(left, (str, list, tuple)) and isinstance(right, int):
            _too_large(len(left) * right)
        elif isinstance(right, (str, list, tuple)) and isinstance(left, int):
            _too_large(len(right) * left)
        elif ints and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise _LimitExceeded("multiplies numbers that are too large")
    elif operator == "+":
        if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
            _too_large(len(left) + len(right))
        elif ints and max(left.bit_length(), right.bit_length()) > MAX_INT_BITS:
            raise _LimitExceeded("adds numbers that are too large")
    elif operator == "**":
        if ints and right > 0 and abs(left) > 1 and abs(left).bit_length() * right > MAX_INT_BITS:
            raise _LimitExceeded("raises a number to too high a power")
    elif operator == "%" and isinstance(left, str):
        for match in _PERCENT_SPEC.finditer(left):
            for width in match.groups():
                if width == "*" or (width is not None and int(width) > MAX_OUTPUT):
                    raise _LimitExceeded("formats with too wide a field")


def _check_name(obj: Any, name: str) -> None:
    if name.startswith("_"):
        raise SecurityError(f"access to {name!r} is not allowed")
    # str.format and its kind are wrapped by the sandbox rather than called through `call`.
    if isinstance(obj, str) and name not in _STR_METHODS:
        raise SecurityError(f"access to str.{name} is not allowed")


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, also refusing private names, unlisted methods and work
    beyond the allowance; `_Guard` routes loops and `~` through the hooks below."""

    intercepted_binops = frozenset({"*", "+", "**", "%"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        _charge()
        _check_name(obj, attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _charge()
        if isinstance(argument, str):
            _check_name(obj, argument)
        return super().getitem(obj, argument)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _charge(1 + _size(left) // 64 + _size(right) // 64)
        _check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _charge(1 + sum(_size(a) for a in args))
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, _BUILTIN_VALUES):
            allowed = next((m for kind, m in _METHODS if isinstance(owner, kind)), frozenset())
            if name not in allowed:
                raise SecurityError(f"calling {type(owner).__name__}.{name}() is not allowed")
            # Jinja adds these to calls made inside loops and blocks.
            arguments = {k: v for k, v in kwargs.items() if k not in _JINJA_KWARGS}
            if isinstance(owner, str) and name == "join":
                return _join(owner, *args, **arguments)
            if isinstance(owner, str) and name == "replace":
                return _replace(owner, *args, **arguments)
        return super().call(__context, __obj, *args, **kwargs)

    def cadence_iterate(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """Every loop turn is a loop step and an operation, so nested loops run out."""
        for item in iterable:
            _loop_step()
            yield item

    def cadence_concat(self, parts: list[Any]) -> str:
        """The `~` operator, with its result's length checked before it is built."""
        texts = [str(p) for p in parts]
        _charge(1 + sum(len(t) for t in texts) // 64)
        _too_large(sum(len(t) for t in texts))
        return "".join(texts)


class _Guard(NodeTransformer):
    """Routes loop iterables and `~` through the sandbox's allowance checks."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _environment_call("cadence_iterate", node.iter, node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _environment_call("cadence_concat", nodes.List(node.nodes), node.lineno)


def _environment_call(method: str, argument: nodes.Node, lineno: int) -> nodes.Call:
    call = nodes.Call(nodes.EnvironmentAttribute(method), [argument], [], None, None)
    call.set_lineno(lineno)
    return call


@functools.lru_cache(maxsize=1)
def _environment() -> _Sandbox:
    env = _Sandbox(
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals = {name: env.globals[name] for name in GLOBALS}
    env.globals["range"] = _range
    filters: dict[str, Callable[..., Any]] = {name: env.filters[name] for name in _FILTERS}
    filters["join"] = _join_filter
    filters["replace"] = _replace_filter
    env.filters = {name: _charged(func) for name, func in filters.items()}
    return env


def first_name(name: str) -> str:
    words = name.split()
    return words[0] if words else ""


def context_for(
    person_name: str,
    email: str,
    team: str,
    timezone: str,
    manager_name: str,
    manager_email: str,
    title: str,
) -> TemplateContext:
    """What a body can refer to. `manager` is always there (empty when a person has none),
    so a template that names the manager does not fail at send time for the top of a tree."""
    return {
        "person": {
            "name": person_name,
            "first_name": first_name(person_name),
            "email": email,
            "team": team,
            "timezone": timezone,
        },
        "manager": {
            "name": manager_name,
            "first_name": first_name(manager_name),
            "email": manager_email,
        },
        "message": {"title": title},
    }


def context_for_person(person: Person, title: str, org_zone: str) -> TemplateContext:
    """`context_for` from a loaded `Person` (with its team and manager)."""
    manager = person.manager
    return context_for(
        person_name=person.name,
        email=person.email,
        team=person.team.path if person.team else "",
        timezone=person.timezone or org_zone,
        manager_name=manager.name if manager else "",
        manager_email=manager.email if manager else "",
        title=title,
    )


#: Who a template is tried on when it is checked: someone with a manager, and someone without.
SAMPLE_CONTEXTS: tuple[tuple[str, TemplateContext], ...] = (
    (
        "",
        context_for(
            person_name="Alex Example",
            email="alex@example.com",
            team="Support/EMEA",
            timezone="Europe/London",
            manager_name="Sam Leader",
            manager_email="sam@example.com",
            title="Sample title",
        ),
    ),
    (
        " (for a person with no manager or team)",
        context_for(
            person_name="Alex Example",
            email="alex@example.com",
            team="",
            timezone="UTC",
            manager_name="",
            manager_email="",
            title="Sample title",
        ),
    ),
)


def _available() -> str:
    return ", ".join(f"{obj}.{field}" for obj, fields in FIELDS.items() for field in fields)


def _lookups(tree: nodes.Template) -> Iterator[tuple[nodes.Expr, str, int]]:
    """(object, key, line) for every `a.b`, and every `a['b']` with a literal key."""
    for attribute in tree.find_all(nodes.Getattr):
        yield attribute.node, attribute.attr, attribute.lineno
    for item in tree.find_all(nodes.Getitem):
        if isinstance(item.arg, nodes.Const) and isinstance(item.arg.value, str):
            yield item.node, item.arg.value, item.lineno


def _static_problems(tree: nodes.Template, label: str) -> list[str]:
    """What the source alone shows to be wrong, before anything runs."""
    problems: list[str] = []
    names = find_undeclared_variables(tree)
    # `self` is Jinja's handle on the template itself; a message has no use for it.
    names |= {n.name for n in tree.find_all(nodes.Name) if n.name == "self" and n.ctx == "load"}
    for name in sorted(names - set(FIELDS) - set(GLOBALS)):
        problems.append(f"{label}: unknown variable {name!r} (available: {_available()})")
    for target, key, line in _lookups(tree):
        if key.startswith("_"):
            problems.append(
                f"{label}: line {line}: {key!r} is refused (names starting with _ are not allowed)"
            )
        elif (
            isinstance(target, nodes.Name)
            and target.name in FIELDS
            and key not in FIELDS[target.name]
        ):
            problems.append(
                f"{label}: line {line}: unknown variable {target.name}.{key} "
                f"(available: {_available()})"
            )
    statements: Iterator[nodes.Node] = tree.find_all(tuple(_STATEMENTS))
    for node in statements:
        problems.append(
            f"{label}: line {node.lineno}: {_STATEMENTS[type(node)]} is not allowed in a message"
        )
    for loop in tree.find_all(nodes.For):
        if loop.recursive:
            problems.append(f"{label}: line {loop.lineno}: recursive loops are not allowed")
    return list(dict.fromkeys(problems))


def _build(text: str, label: str) -> tuple[Template | None, list[str]]:
    if len(text) > MAX_SOURCE:
        return None, [f"{label}: longer than {MAX_SOURCE:,} characters"]
    env = _environment()
    try:
        tree = env.parse(text)
        problems = _static_problems(tree, label)
        if problems:
            return None, problems
        guarded = _Guard().visit(tree)
        assert isinstance(guarded, nodes.Template)
        return env.from_string(guarded), []
    except TemplateSyntaxError as exc:
        return None, [f"{label}: syntax error on line {exc.lineno}: {exc.message}"]


@functools.lru_cache(maxsize=256)
def _compiled(text: str) -> Template:
    """One compiled template per body text: the same body goes to thousands of people."""
    template, problems = _build(text, "template")
    if template is None:
        raise PersonaliseError("message template is not valid", problems)
    return template


def _render(template: Template, context: Mapping[str, Any]) -> str:
    token = _allowance.set(
        _Allowance(MAX_OPERATIONS, MAX_LOOP_STEPS, time.monotonic() + MAX_SECONDS)
    )
    chunks = template.generate(context)
    try:
        parts: list[str] = []
        size = 0
        for chunk in chunks:
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise _LimitExceeded(f"renders more than {MAX_OUTPUT:,} characters")
            parts.append(chunk)
        return "".join(parts)
    finally:
        if isinstance(chunks, Generator):
            chunks.close()
        _allowance.reset(token)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SecurityError):
        return f"refused: {exc}"
    if isinstance(exc, UndefinedError):
        return f"unknown variable: {exc}"
    if isinstance(exc, _LimitExceeded):
        return f"refused: {exc}"
    if isinstance(exc, RecursionError):
        return "refused: recurses too deeply"
    return f"fails to render: {type(exc).__name__}: {exc}"


def check_template(text: str, label: str) -> list[str]:
    """Every problem with a body, each line naming `label`; empty when it is fine.

    Run when a message is added, so a mistake is reported to its author once instead of
    failing for every recipient at send time.
    """
    template, problems = _build(text, label)
    if template is None:
        return problems
    for who, context in SAMPLE_CONTEXTS:
        try:
            _render(template, context)
        except Exception as exc:
            problems.append(f"{label}: {_describe(exc)}{who}")
            break
    return list(dict.fromkeys(problems))


def personalise(text: str, context: Mapping[str, Any]) -> str:
    """`text` rendered for one recipient; raises `PersonaliseError` if it cannot be."""
    template = _compiled(text)
    try:
        return _render(template, context)
    except Exception as exc:
        raise PersonaliseError("message template cannot be rendered", [_describe(exc)]) from exc
