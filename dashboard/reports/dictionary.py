"""Data dictionary: per column a label, a unit, a description and names for coded values
(`Home: 1 = rent, 2 = owner`), read from a small CSV or YAML file.

A dictionary is display only: it never changes what a model is given. `with_dictionary`
puts it on an Explanation (kept in run.json), and every view, reason and report reads it
there through `values.value_text` and `values.feature_text`. Columns that are not features
(the label, an identifier) may be described too; they are left out of the explanation.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from whybox.explainers import Explanation
from whybox.model_zoo import WhyboxError
from whybox.model_zoo.settings_files import csv_entries, load_yaml, read_bytes, text_file

TEXT_FIELDS = ("label", "unit", "description")
CSV_COLUMNS = ("column", *TEXT_FIELDS, "values")
EXPECTED_CSV = (
    "a CSV with a header line column[,label][,unit][,description][,values], values as "
    "'1 = rent; 2 = owner'"
)
EXPECTED_YAML = (
    "YAML mapping each column to {label, unit, description, values: {code: name}} (each optional)"
)
PAIR = re.compile(r"^\s*([^=]+?)\s*=\s*(.+?)\s*$")

Dictionary = dict[str, dict[str, Any]]
"""{column: {"label": str, "unit": str, "description": str, "values": {code: name}}}, each
field present only where given; codes as `code_key` writes them."""


def code_key(code: object) -> str:
    """A coded value as a dictionary key: whole numbers without a decimal point, so 1, 1.0
    and '1' are the same code."""
    text = str(code).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def load_dictionary(path: Path) -> Dictionary:
    """Read a data dictionary file: CSV, or YAML (.yaml, .yml)."""
    return parse_dictionary(read_bytes(path, "data dictionary"), Path(path).name)


def parse_dictionary(raw: bytes, name: str) -> Dictionary:
    """The data dictionary in `raw`, a CSV or YAML file called `name` (e.g. an upload)."""
    suffix = Path(name).suffix.lower()
    if suffix not in (".csv", ".yaml", ".yml"):
        raise WhyboxError(
            f"data dictionary {name}: expected a .csv, .yaml or .yml file, got {suffix!r}"
        )
    what = f"data dictionary {name}"
    if suffix == ".csv":
        return _read_csv(text_file(raw, what, EXPECTED_CSV), what)
    return _read_yaml(text_file(raw, what, EXPECTED_YAML), what)


def _read_csv(text: str, what: str) -> Dictionary:
    dictionary: Dictionary = {}
    for where, entry in csv_entries(text, what, CSV_COLUMNS, ("column",), EXPECTED_CSV):
        values = {}
        for pair in filter(str.strip, re.split(r"[;,]", entry.pop("values", ""))):
            match = PAIR.match(pair)
            if match is None:
                raise WhyboxError(
                    f"{where}, values: {pair.strip()!r} is not 'code = name'; "
                    "write values as '1 = rent; 2 = owner'"
                )
            values[match[1]] = match[2]
        _add(dictionary, entry.pop("column"), {**entry, "values": values}, where)
    return dictionary


def _read_yaml(text: str, what: str) -> Dictionary:
    data = load_yaml(text, what, EXPECTED_YAML)
    if not isinstance(data, dict):
        raise WhyboxError(f"{what}: expected a {EXPECTED_YAML}")
    dictionary: Dictionary = {}
    for column, entry in data.items():
        where = f"{what}, column {str(column)!r}"
        if not isinstance(entry, dict):
            raise WhyboxError(f"{where}: expected a mapping of label, unit, description, values")
        unknown = [str(f) for f in entry if f not in (*TEXT_FIELDS, "values")]
        if unknown:
            raise WhyboxError(
                f"{where}: unknown field {', '.join(unknown)}; "
                f"expected {', '.join(CSV_COLUMNS[1:])}"
            )
        values = entry.get("values") or {}
        if not isinstance(values, dict) or any(isinstance(v, dict | list) for v in values.values()):
            raise WhyboxError(f"{where}: values must map each code to a name, e.g. {{1: rent}}")
        for field in TEXT_FIELDS:
            if isinstance(entry.get(field), dict | list):
                raise WhyboxError(f"{where}: the {field} must be text, got {entry[field]!r}")
        fields = {f: str(entry[f]) for f in TEXT_FIELDS if entry.get(f) is not None}
        _add(dictionary, str(column), {**fields, "values": values}, where)
    return dictionary


def _add(dictionary: Dictionary, column: str, entry: dict[str, Any], where: str) -> None:
    column = column.strip()
    if not column:
        raise WhyboxError(f"{where}: the column name must not be empty")
    if column in dictionary:
        raise WhyboxError(f"{where}: column {column!r} is described twice")
    values: dict[str, str] = {}
    for code, name in entry.pop("values").items():
        key, text = code_key(code), str(name).strip()
        if not key or not text:
            raise WhyboxError(f"{where}: a coded value and its name must not be empty")
        if key in values:
            raise WhyboxError(f"{where}: code {key!r} is named twice")
        values[key] = text
    kept = {field: text.strip() for field, text in entry.items() if text.strip()}
    dictionary[column] = {**kept, **({"values": values} if values else {})}


def with_dictionary(explanation: Explanation, dictionary: Dictionary | None) -> Explanation:
    """`explanation` showing `dictionary`'s labels, units and value names for its features
    (a copy; None or {} leaves it as it was computed)."""
    if not dictionary:
        return explanation
    kept = {f: dictionary[f] for f in explanation.feature_names if f in dictionary}
    return replace(explanation, dictionary=kept)


def coded_values(dictionary: dict[str, dict] | None) -> dict[str, dict[float, str]]:
    """The numeric codes the dictionary names, per column (e.g. Home: 1.0 -> rent), for
    tests that treat those columns as categories."""
    coded: dict[str, dict[float, str]] = {}
    for column, entry in (dictionary or {}).items():
        named = {}
        for code, name in entry.get("values", {}).items():
            try:
                named[float(code)] = name
            except ValueError:
                continue  # a text category: the data holds it as one already
        if named:
            coded[column] = named
    return coded
