"""User-written bodies: filled in per person, checked at add time, and kept in the sandbox."""

from __future__ import annotations

import pytest

from cadence.errors import CadenceError
from cadence.messages.personalise import (
    MAX_OUTPUT,
    PersonaliseError,
    TemplateContext,
    check_template,
    context_for,
    personalise,
)


def _context(manager: bool = True) -> TemplateContext:
    return context_for(
        person_name="Priya Natarajan Shah",
        email="priya@example.com",
        team="Support/EMEA" if manager else "",
        timezone="Europe/London",
        manager_name="Sam O'Leary" if manager else "",
        manager_email="sam@example.com" if manager else "",
        title="New refund policy",
    )


def test_fills_first_name_team_manager_and_title() -> None:
    body = (
        "Hi {{ person.first_name }} ({{ person.team }}, {{ person.timezone }}): "
        "{{ message.title }}. Ask {{ manager.first_name }} at {{ manager.email }}."
    )
    assert check_template(body, "body") == []
    assert personalise(body, _context()) == (
        "Hi Priya (Support/EMEA, Europe/London): New refund policy. Ask Sam at sam@example.com."
    )


def test_person_without_manager_gets_empty_manager_not_an_error() -> None:
    body = "{% if manager.name %}Ask {{ manager.first_name }}.{% else %}Ask your team.{% endif %}"
    assert check_template(body, "body") == []
    assert personalise(body, _context(manager=False)) == "Ask your team."
    assert personalise("[{{ manager.first_name }}|{{ person.team }}]", _context(False)) == "[|]"


def test_block_tags_leave_no_blank_lines_in_markdown() -> None:
    body = "Hello\n{% if person.team %}\nTeam: {{ person.team }}\n{% endif %}\nBye"
    assert personalise(body, _context()) == "Hello\nTeam: Support/EMEA\nBye"


def test_loops_filters_and_string_methods_that_messages_use_are_allowed() -> None:
    body = (
        "{% for step in ['Read', 'Ask'] %}{{ loop.index }}. {{ step|upper }}\n{% endfor %}"
        "{{ person.name.split()|last }} {{ person.email|replace('@', ' at ') }}"
        " {{ [3, 1, 2]|sort|join(',') }} {{ person.name ~ '!' }}"
    )
    assert check_template(body, "body") == []
    assert personalise(body, _context()) == (
        "1. READ\n2. ASK\nShah priya at example.com 1,2,3 Priya Natarajan Shah!"
    )


def test_user_text_is_not_escaped_here_because_each_format_escapes_later() -> None:
    context = _context()
    context["person"]["name"] = "<b>&</b>"
    assert personalise("{{ person.name }}", context) == "<b>&</b>"


@pytest.mark.parametrize(
    "body",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ person.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ person['__class__'] }}",
        "{{ joiner.__call__.__globals__ }}",
        "{{ range.__self__ }}",
    ],
)
def test_sandbox_escapes_are_refused_by_name(body: str) -> None:
    problems = check_template(body, "variant 2")
    assert problems
    assert all(p.startswith("variant 2: ") for p in problems)
    assert any("refused" in p and "'__" in p for p in problems)


@pytest.mark.parametrize(
    "body",
    [
        # Built at run time, so only the sandbox can see it.
        "{% set name = '_' ~ '_class__' %}{{ person[name] }}",
        "{{ '{0.__class__}'.format(person) }}",
        "{{ 'x'['format'] }}",
        "{{ [1].append(2) }}",
        "{{ person.items().__iter__ }}",
    ],
)
def test_escapes_built_at_run_time_are_refused(body: str) -> None:
    problems = check_template(body, "body")
    assert problems, body
    assert all(p.startswith("body: ") for p in problems)
    assert any("refused" in p or "not allowed" in p for p in problems), problems


def test_filters_that_reach_attributes_are_not_available() -> None:
    problems = check_template("{{ person|attr('__class__') }}", "body")
    assert problems == ["body: syntax error on line 1: No filter named 'attr'."]


def test_unknown_top_level_variable_is_refused_with_what_is_available() -> None:
    [problem] = check_template("Hello {{ secret }}", "body")
    assert problem.startswith("body: unknown variable 'secret'")
    assert "person.first_name" in problem
    assert "manager.email" in problem


def test_unknown_field_of_a_known_object_is_refused() -> None:
    [problem] = check_template("Line one\nPay: {{ person.salary }}", "variant 1")
    assert problem.startswith("variant 1: line 2: unknown variable person.salary")


def test_unknown_field_reached_indirectly_is_caught_by_rendering() -> None:
    [problem] = check_template("{% set p = person %}{{ p.salary }}", "body")
    assert problem.startswith("body: unknown variable:")
    assert "salary" in problem


def test_syntax_error_names_label_and_line() -> None:
    [problem] = check_template("Hello\n\n{{ person.name }\n", "body")
    assert problem.startswith("body: syntax error on line 3:")


def test_template_tags_that_would_reach_other_templates_are_refused() -> None:
    for body, tag in [
        ("{% include 'x.html' %}", "include"),
        ("{% macro m() %}x{% endmacro %}", "macro"),
        ("{% set x %}{{ person.name }}{% endset %}", "set"),
    ]:
        [problem] = check_template(body, "body")
        assert problem.startswith("body: line 1: {% " + tag), problem


def test_failure_only_for_people_without_a_manager_is_reported_at_add_time() -> None:
    [problem] = check_template("Ask {{ manager.first_name[0] }}", "body")
    assert problem.startswith("body: unknown variable:")
    assert problem.endswith("(for a person with no manager or team)")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{% for i in range(10**9) %}x{% endfor %}", "range() of 1,000,000,000 numbers"),
        ("{% for i in range(1000) %}{{ 'x' * 50 }}{% endfor %}", "renders more than 40,000"),
        ("{{ 'x' * 10**9 }}", "longer than 40,000"),
        ("{% set a = 'x' * 30000 %}{{ a ~ a }}", "longer than 40,000"),
        ("{{ range(10)|join('x' * 9000) }}", "longer than 40,000"),
        ("{{ 'ab'.replace('', 'y' * 15000) }}", "longer than 40,000"),
        ("{{ '%999999999s' % 'x' }}", "too wide"),
        ("{{ 10 ** 1000000 }}", "too high a power"),
        ("{% set r = range(1000) %}{% for i in r %}{% for j in r %}{% endfor %}{% endfor %}",
         "more than 1,000 loop steps"),
        ("{% for i in range(1000) %}{{ range(1000)|sum }}{% endfor %}",
         "more than 20,000 operations"),
        ("{% set ns = namespace(n=3) %}{% for i in range(64) %}{% set ns.n = ns.n * ns.n %}"
         "{% endfor %}{{ ns.n }}", "too large"),
    ],
)  # fmt: skip
def test_templates_that_render_enormously_are_refused(body: str, reason: str) -> None:
    [problem] = check_template(body, "body")
    assert problem.startswith("body: ")
    assert reason in problem


def test_source_longer_than_the_limit_is_refused() -> None:
    assert check_template("x" * (MAX_OUTPUT + 1), "body") == ["body: longer than 40,000 characters"]


def test_personalise_raises_a_cadence_error_naming_the_problem() -> None:
    with pytest.raises(PersonaliseError) as caught:
        personalise("{{ person.__class__ }}", _context())
    assert isinstance(caught.value, CadenceError)
    assert "__class__" in str(caught.value)
    with pytest.raises(PersonaliseError, match="division by zero"):
        personalise("{{ 1 / 0 }}", _context())


def test_the_same_body_is_compiled_once() -> None:
    from cadence.messages.personalise import _compiled

    body = "Cached for {{ person.first_name }}"
    personalise(body, _context())
    before = _compiled.cache_info().hits
    for _ in range(5):
        personalise(body, _context())
    assert _compiled.cache_info().hits == before + 5
