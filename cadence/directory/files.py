"""Reading a directory file (CSV or YAML) into rows, with every problem named by file, line
and column."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from cadence.directory.people import (
    COLUMNS,
    REQUIRED_COLUMNS,
    DirectoryRow,
)
from cadence.errors import InputError
from cadence.inputs import MAX_DEPTH

# ---------------------------------------------------------------------------------------
# Reading files


def parse_directory(path: Path) -> list[DirectoryRow]:
    """Read a CSV or YAML directory file, chosen by its extension.

    Only the shape of the file is checked here (known columns, text values); what the values
    mean is checked by `validate`, so that one run reports every problem in the rows.
    """
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".yaml", ".yml"):
        raise InputError(
            f"{path}: unsupported file type {path.suffix or '(none)'!r}: use .csv, .yaml or .yml"
        )
    text = _read_text(path)
    rows = _parse_csv(text, path) if suffix == ".csv" else _parse_yaml(text, path)
    if not rows:
        # An empty file is never what anyone means, and with --full it would deactivate everyone.
        raise InputError(f"{path}: no people in the file, nothing to import")
    return rows


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read it: {exc.strerror}") from None
    try:
        # utf-8-sig: spreadsheets often start their UTF-8 exports with a byte-order mark.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: not UTF-8 text (byte {exc.start} cannot be decoded); save it as UTF-8"
        ) from None


def _clean(value: str | None) -> str | None:
    """Trim a cell; an empty cell means "not set"."""
    if value is None:
        return None
    value = value.strip()
    return value or None


def _make_row(where: str, values: Mapping[str, str | None]) -> DirectoryRow:
    email = (_clean(values.get("email")) or "").lower()
    manager = _clean(values.get("manager_email"))
    team = _clean(values.get("team"))
    channel = _clean(values.get("channel"))
    return DirectoryRow(
        where=where,
        email=email,
        name=_clean(values.get("name")) or "",
        team="/".join(part.strip() for part in team.split("/")) if team else None,
        manager_email=manager.lower() if manager else None,
        slack_user_id=_clean(values.get("slack_user_id")),
        timezone=_clean(values.get("timezone")),
        channel=channel.lower() if channel else None,
    )


def _parse_csv(text: str, path: Path) -> list[DirectoryRow]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        while header is not None and not any(cell.strip() for cell in header):
            header = next(reader, None)
        if header is None:
            raise InputError(f"{path}: empty file: expected a header row naming the columns")
        names = [cell.strip().lower() for cell in header]
        _check_header(names, path, header_line=reader.line_num)

        rows: list[DirectoryRow] = []
        problems: list[str] = []
        line = reader.line_num
        for cells in reader:
            first_line, line = line + 1, reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            where = f"row {first_line}"
            values: dict[str, str | None] = {}
            for index, cell in enumerate(cells):
                name = names[index] if index < len(names) else ""
                if name:
                    values[name] = cell
                elif cell.strip():
                    problems.append(
                        f"{where}: value {cell.strip()!r} in column {index + 1}, "
                        "which has no header"
                    )
            rows.append(_make_row(where, values))
    except csv.Error as exc:
        raise InputError(f"{path}: line {reader.line_num}: not valid CSV: {exc}") from None
    if problems:
        raise InputError(f"{path}: {len(problems)} rows cannot be read", problems)
    return rows


def _check_header(names: list[str], path: Path, header_line: int) -> None:
    named = [n for n in names if n]
    problems = []
    unknown = [n for n in named if n not in COLUMNS]
    if unknown:
        problems.append(f"unknown columns: {', '.join(unknown)} (known: {', '.join(COLUMNS)})")
    duplicated = sorted(n for n, count in Counter(named).items() if count > 1)
    if duplicated:
        problems.append(f"columns named more than once: {', '.join(duplicated)}")
    missing = [n for n in REQUIRED_COLUMNS if n not in named]
    if missing:
        problems.append(f"missing required columns: {', '.join(missing)}")
    if problems:
        raise InputError(f"{path}: bad header on line {header_line}", problems)


def _yaml_depth(text: str, path: Path) -> None:
    """Refuse a document nested deeper than MAX_DEPTH, judged from the parser's events (a
    loop, not recursion) before PyYAML's composer, which recurses once per level, sees it."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else "?"
                raise InputError(
                    f"{path}: line {line}: nested more than {MAX_DEPTH} levels deep; "
                    "a directory file is a list of people, each a mapping of fields"
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _parse_yaml(text: str, path: Path) -> list[DirectoryRow]:
    try:
        _yaml_depth(text, path)
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise InputError(f"{path}: not valid YAML: {at}{problem}") from None
    if document is None:
        return []
    entries: Any = document
    if isinstance(document, dict):
        extra = sorted(str(k) for k in document if k != "people")
        if extra or "people" not in document:
            raise InputError(
                f"{path}: expected a list of people or a mapping with a `people:` list"
                + (f" (unknown keys: {', '.join(extra)})" if extra else "")
            )
        entries = document["people"] or []
    if not isinstance(entries, list):
        raise InputError(f"{path}: expected a list of people or a mapping with a `people:` list")

    rows: list[DirectoryRow] = []
    problems: list[str] = []
    for number, entry in enumerate(entries, start=1):
        where = f"entry {number}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected a mapping of fields, got {_yaml_kind(entry)}")
            continue
        values: dict[str, str | None] = {}
        unknown: list[str] = []
        for key, value in entry.items():
            field = str(key).strip().lower()
            if field not in COLUMNS:
                unknown.append(str(key))
            elif value is None:
                values[field] = None
            elif isinstance(value, str):
                values[field] = value
            elif isinstance(value, int | float) and not isinstance(value, bool):
                values[field] = str(value)
            else:
                problems.append(f"{where}: {field} must be text, got {_yaml_kind(value)}")
        if unknown:
            problems.append(
                f"{where}: unknown fields: {', '.join(unknown)} (known: {', '.join(COLUMNS)})"
            )
        rows.append(_make_row(where, values))
    if problems:
        raise InputError(f"{path}: {len(problems)} entries cannot be read", problems)
    return rows


def _yaml_kind(value: object) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
