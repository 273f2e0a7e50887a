"""Small settings files a user gives (reason texts, a data dictionary, recourse constraints):
read as UTF-8 text, YAML with a safe loader, every problem one line that names the file."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from whybox.model_zoo.errors import WhyboxError


class _UniqueKeys(yaml.SafeLoader):
    """yaml.safe_load, except that a key given twice is an error rather than the last wins."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key_node.tag != "tag:yaml.org,2002:merge" and isinstance(key, str | int | float):
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"{key!r} is given twice", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_bytes(path: Path, what: str) -> bytes:
    """The bytes of a settings file on disk; a file that cannot be read is one line naming
    `what` (e.g. 'data dictionary') and the path."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise WhyboxError(f"cannot read {what} {path}: {exc.strerror}") from None


def text_file(raw: bytes, what: str, expected: str) -> str:
    """The UTF-8 text of a small settings file (`what` names it in errors), not empty."""
    try:
        if b"\x00" in raw:
            raise UnicodeError
        text = raw.decode("utf-8-sig")
    except UnicodeError:
        raise WhyboxError(f"{what} is not UTF-8 text; expected {expected}") from None
    if not text.strip():
        raise WhyboxError(f"{what} is empty; expected {expected}")
    return text


def load_yaml(text: str, what: str, expected: str) -> Any:
    """`text` read with a safe loader that refuses a key given twice; a syntax error is one
    line naming `what` and the line."""
    try:
        return yaml.load(text, Loader=_UniqueKeys)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, what, expected) from None


def compose_yaml(text: str, what: str, expected: str) -> yaml.Node:
    """`text`'s YAML node tree, whose marks give each value's line for a reader that names
    the line at fault; errors as `load_yaml`'s, and a file of only comments is one too."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, what, expected) from None
    if root is None:
        raise WhyboxError(f"{what} holds only comments; expected a {expected}")
    return root


def _syntax_error(exc: yaml.YAMLError, what: str, expected: str) -> WhyboxError:
    mark = getattr(exc, "problem_mark", None)
    line = f", line {mark.line + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or "not valid YAML"
    return WhyboxError(f"{what}{line}: {problem}; expected a {expected}")


def csv_entries(
    text: str, what: str, columns: Sequence[str], required: Sequence[str], expected: str
) -> Iterator[tuple[str, dict[str, str]]]:
    """The rows of a CSV settings file as (where, {column: cell}), `where` naming the file
    and line for errors. The header names the `required` columns and no others than
    `columns`, each once (any case); blank lines are skipped."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [cell.strip().lower() for cell in next(reader)]
        wrong = [f"no {c!r} column" for c in required if c not in header] + [
            f"column {c!r} {'twice' if c in columns else 'unknown'}"
            for c in sorted(set(header))
            if header.count(c) > 1 or c not in columns
        ]
        if wrong:
            raise WhyboxError(f"{what}, line 1: {', '.join(wrong)}; expected {expected}")
        for cells in reader:
            where = f"{what}, line {reader.line_num}"
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                raise WhyboxError(
                    f"{where}: {len(cells)} cells, expected {len(header)} ({', '.join(header)})"
                )
            yield where, dict(zip(header, (cell.strip() for cell in cells), strict=True))
    except csv.Error as exc:
        raise WhyboxError(f"{what}, line {reader.line_num}: {exc}") from None
