"""Tables from bytes: CSV in the encodings, delimiters and number formats people's tools
write, and Parquet; column names checked, values not yet interpreted."""

from __future__ import annotations

import csv
import io
from collections import Counter

import pandas as pd

from whybox.model_zoo.errors import WhyboxError
from whybox.model_zoo.limits import COLUMNS

PARQUET_MAGIC = b"PAR1"
MAX_NAMED_COLUMNS = 8
MAX_NAME_SHOWN = 60  # characters of a column name quoted in a message
UTF16_PROBE = 4096  # bytes looked at to recognise UTF-16 without a byte-order mark


def name_list(names: list[str]) -> str:
    """The first few names, quoted and each shortened, for a one-line message."""
    shown = ", ".join(
        repr(n if len(n) <= MAX_NAME_SHOWN else n[: MAX_NAME_SHOWN - 3] + "...")
        for n in map(str, names[:MAX_NAMED_COLUMNS])
    )
    more = len(names) - MAX_NAMED_COLUMNS
    return shown + (f" and {more} more" if more > 0 else "")


def _decode(raw: bytes, name: str) -> str:
    """Text in the common encodings: UTF-8 (with or without BOM), UTF-16 (with or without
    BOM), else Windows-1252 (which covers Latin-1 text); anything else is not text."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        encodings: tuple[str, ...] = ("utf-16",)
    elif b"\x00" in raw[:UTF16_PROBE]:
        # UTF-16 without a BOM: text from the ASCII range has every other byte zero
        head = raw[:UTF16_PROBE]
        halves = (("utf-16-le", head[0::2], head[1::2]), ("utf-16-be", head[1::2], head[0::2]))
        encodings = tuple(e for e, chars, zeros in halves if all(chars) and not any(zeros))
    else:
        encodings = ("utf-8-sig", "cp1252")
    for encoding in encodings:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise WhyboxError(
        f"the data file {name!r} looks binary, not CSV text (UTF-8, UTF-16 or Windows-1252); "
        "upload a CSV or Parquet file"
    )


def _check_width(columns: int, name: str) -> None:
    if columns > COLUMNS.value():
        raise COLUMNS.exceeded(
            f"the data file {name!r} has {columns:,} columns",
            "keep the model's feature columns (and a label column)",
        )


def read_table(raw: bytes, name: str = "data") -> pd.DataFrame:
    """Parse CSV (any common encoding and delimiter) or Parquet bytes into a frame."""
    if not raw.strip():
        raise WhyboxError(f"the data file {name!r} is empty; it needs a header row and data rows")
    if raw[:4] == PARQUET_MAGIC:
        try:
            frame = pd.read_parquet(io.BytesIO(raw))
        except Exception as exc:  # pyarrow raises many types for damaged files
            raise WhyboxError(f"the Parquet file {name!r} could not be read: {exc}") from None
        _check_width(frame.shape[1], name)
        return frame
    text = _decode(raw, name)
    try:
        dialect = csv.Sniffer().sniff(text[:65536], delimiters=",;\t|")
        sep = dialect.delimiter
    except csv.Error:
        sep = ","
    try:
        header = next(csv.reader(io.StringIO(text), delimiter=sep), [])
    except csv.Error as exc:  # a field over csv's limit (128 KiB)
        raise WhyboxError(f"the CSV file {name!r} could not be parsed: {exc}") from None
    _check_width(len(header), name)
    counts = Counter(h.strip() for h in header)
    duplicated = sorted(h for h, n in counts.items() if n > 1)
    if duplicated:
        raise WhyboxError(
            f"duplicated column name(s) {name_list(duplicated)}; names must be unique"
        )
    try:
        return pd.read_csv(io.StringIO(text), sep=sep, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise WhyboxError(f"the data file {name!r} has no columns; it needs a header row") from None
    except (pd.errors.ParserError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise WhyboxError(f"the CSV file {name!r} could not be parsed: {first}") from None
