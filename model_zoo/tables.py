"""Tables from bytes, recognised by content: CSV as people's tools write it (any common
encoding and delimiter, Excel's decimal commas, thousands separators, R's row names),
Parquet, Excel workbooks and R data files, any of them gzip, bzip2 or xz compressed.

Numbers are decided per column: a column whose every value reads as a number under one
convention (decimal point or decimal comma, with or without thousands separators) becomes
numeric; anything else stays text. What was assumed is returned as notes.
"""

from __future__ import annotations

import bz2
import contextlib
import csv
import io
import lzma
import math
import re
import sys
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pandas as pd

from whybox.model_zoo.errors import WhyboxError
from whybox.model_zoo.limits import COLUMNS, ROWS, UNPACKED_MB

PARQUET_MAGIC = b"PAR1"
MAX_NAMED_COLUMNS = 8
MAX_NAME_SHOWN = 60  # characters of a column name quoted in a message
UTF16_PROBE = 4096  # bytes looked at to recognise UTF-16 without a byte-order mark
TABLES = "a table (CSV, Parquet, Excel .xlsx or R .rds/.RData)"

IMAGES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Excel 97-2003 .xls, and other Office files
COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}
# R's serialization (saveRDS) in XDR, native binary or ASCII, versions 2 and 3; save() puts
# "RDX3\n" (or RDA/RDB, version 2 or 3) in front of it.
R_SERIALIZED = re.compile(
    rb"X\n\x00\x00\x00[\x02\x03]|B\n[\x02\x03]\x00\x00\x00|A\n[23]\n\d{6}\n\d{6}\n"
)
R_WORKSPACE = re.compile(rb"RD[XAB][23]\n")

# Numbers as text. A thousands separator groups digits by three, the same mark throughout;
# a value is read under the decimal point convention (groups: comma, space, apostrophe) or
# the decimal comma convention (groups: dot, space, apostrophe). No back-references, so
# pandas hands the patterns to pyarrow's fast engine.
SPACES = " \u00a0\u202f'\u2019"  # space, no-break spaces (Excel, French), apostrophe (Swiss)
_EXPONENT = r"(?:[eE][+-]?\d+)?"


# What a spreadsheet cell holds for a missing value (Excel's #N/A error included), as a
# CSV cell with one of these reads as missing in pandas.
MISSING = frozenset({"", "NA", "N/A", "n/a", "#N/A", "NaN", "nan", "null", "NULL", "None", "<NA>"})


def _convention(decimal: str, groups: str) -> re.Pattern:
    plain = rf"(?:\d+(?:[{decimal}]\d*)?|[{decimal}]\d+){_EXPONENT}"
    grouped = [rf"[1-9]\d{{0,2}}(?:[{g}]\d{{3}})+(?:[{decimal}]\d+)?" for g in groups]
    return re.compile(rf"[+-]?(?:{'|'.join([plain, *grouped])})")


POINT = _convention(".", "," + SPACES)
COMMA = _convention(",", "." + SPACES)
DOT_GROUPED = re.compile(r"[+-]?[1-9]\d{0,2}(?:\.\d{3})+")  # 1.234: a decimal, or 1234?
SPECIAL = re.compile(r"(?i)[+-]?(?:inf|infinity)")
BOOLEANS = {"true": True, "false": False}
TEXT = ("string", "empty")  # pandas' inferred kinds of a column of text and missing values


def name_list(names: list[str]) -> str:
    """The first few names, quoted and each shortened, for a one-line message."""
    shown = ", ".join(
        repr(n if len(n) <= MAX_NAME_SHOWN else n[: MAX_NAME_SHOWN - 3] + "...")
        for n in map(str, names[:MAX_NAMED_COLUMNS])
    )
    more = len(names) - MAX_NAMED_COLUMNS
    return shown + (f" and {more} more" if more > 0 else "")


def read_table(raw: bytes, name: str = "data") -> tuple[pd.DataFrame, list[str]]:
    """The table in `raw` (CSV, Parquet, .xlsx, .rds or .RData, possibly compressed) and
    notes on what was assumed to read it (delimiter, number format, row names...)."""
    if not raw.strip():
        raise WhyboxError(f"the data file {name!r} is empty; it needs a header row and data rows")
    notes: list[str] = []
    kind = next((k for magic, k in COMPRESSED.items() if raw.startswith(magic)), None)
    if kind is not None:
        raw = _decompress(raw, kind, name)
        if not R_SERIALIZED.match(raw) and not R_WORKSPACE.match(raw):
            notes.append(f"unpacked the {kind}-compressed file")
    frame, more = _read_uncompressed(raw, name)
    _check_size(frame, name)
    return frame, notes + more


def table_columns(raw: bytes, name: str = "data") -> list[str]:
    """The column names of the table in `raw`, as `read_table` would give them: for a
    Parquet file from its footer alone (a million rows are not read to list 50 names)."""
    if raw[:4] != PARQUET_MAGIC:
        return [str(c) for c in read_table(raw, name)[0].columns]
    with _parquet_errors(name):
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pq.read_schema(pa.BufferReader(raw))
    index = (schema.pandas_metadata or {}).get("index_columns", [])
    return [c for c in schema.names if c not in index]


@contextlib.contextmanager
def _parquet_errors(name: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:  # pyarrow raises many types for damaged files
        raise WhyboxError(f"the Parquet file {name!r} could not be read: {exc}") from None


def release_unused() -> None:
    """Give back to the system the memory that pyarrow's allocator keeps after a Parquet table
    was read and converted: as much as the table again, for as long as the process lives."""
    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()


def _read_uncompressed(raw: bytes, name: str) -> tuple[pd.DataFrame, list[str]]:
    if raw[:4] == PARQUET_MAGIC:
        with _parquet_errors(name):
            import pyarrow as pa
            import pyarrow.parquet as pq

            # Read over the bytes without copying them, and converted a column at a time,
            # each Arrow column freed once converted: the table is never whole twice.
            table = pq.read_table(pa.BufferReader(raw))
            return table.to_pandas(split_blocks=True, self_destruct=True), []
    if R_SERIALIZED.match(raw) or R_WORKSPACE.match(raw):
        return _read_r(raw, name, workspace=bool(R_WORKSPACE.match(raw)))
    if raw.startswith(ZIP_MAGIC):
        return _read_zip(raw, name)
    _refuse_other_binary(raw, name)
    return _read_csv(raw, name)


def _refuse_other_binary(raw: bytes, name: str) -> None:
    """Images and old Office files, named, so the message says what to give instead."""
    image = next((k for magic, k in IMAGES.items() if raw.startswith(magic)), None)
    if image is None and raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        image = "WebP"
    if image is not None:
        raise WhyboxError(
            f"the data file {name!r} is a {image} image, but this model takes {TABLES}; "
            "explaining images needs an image model"
        )
    if raw.startswith(OLE_MAGIC):
        raise WhyboxError(
            f"the data file {name!r} is an old Office file (Excel 97-2003 .xls?); "
            "save it from Excel as .xlsx or CSV"
        )


def _check_size(frame: pd.DataFrame, name: str) -> None:
    _check_width(frame.shape[1], name)
    if len(frame) > ROWS.value():
        raise ROWS.exceeded(
            f"the data file {name!r} has {len(frame):,} rows", "explain a sample of them"
        )


def _check_width(columns: int, name: str) -> None:
    if columns > COLUMNS.value():
        raise COLUMNS.exceeded(
            f"the data file {name!r} has {columns:,} columns",
            "keep the model's feature columns (and a label column)",
        )


def _check_names(header: list[str]) -> None:
    counts = Counter(str(h).strip() for h in header)
    duplicated = sorted(h for h, n in counts.items() if n > 1)
    if duplicated:
        raise WhyboxError(
            f"duplicated column name(s) {name_list(duplicated)}; names must be unique"
        )


# Compressed files -----------------------------------------------------------------------


def _decompress(raw: bytes, kind: str, name: str) -> bytes:
    """The content of a gzip, bzip2 or xz file, refused past the unpacked-size limit before
    more than that is ever held in memory."""
    limit = UNPACKED_MB.bytes()
    try:
        if kind == "gzip":
            data = zlib.decompressobj(wbits=31).decompress(raw, limit + 1)
        elif kind == "bzip2":
            data = bz2.BZ2Decompressor().decompress(raw, max_length=limit + 1)
        else:
            data = lzma.LZMADecompressor().decompress(raw, max_length=limit + 1)
    except (zlib.error, OSError, EOFError, lzma.LZMAError) as exc:
        raise WhyboxError(f"the {kind} file {name!r} is damaged: {exc}") from None
    if len(data) > limit:
        raise WhyboxError(
            f"the {kind} file {name!r} unpacks to more than the limit of {UNPACKED_MB.shown()} "
            f"set by {UNPACKED_MB.setting}; give a smaller table"
        )
    if not data.strip():
        raise WhyboxError(f"the {kind} file {name!r} holds nothing; it needs a table")
    if any(data.startswith(magic) for magic in COMPRESSED):
        raise WhyboxError(f"the {kind} file {name!r} holds another compressed file; unpack it")
    return data


# CSV ------------------------------------------------------------------------------------


def _decode(raw: bytes, name: str) -> tuple[str, str]:
    """Text in the common encodings: UTF-8 (with or without BOM), UTF-16 (with or without
    BOM), else Windows-1252 (which covers Latin-1 text); anything else is not text.
    Returns the text and the encoding that decoded it."""
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
            return raw.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise WhyboxError(
        f"the data file {name!r} looks binary, not CSV text (UTF-8, UTF-16 or Windows-1252); "
        f"give {TABLES}"
    )


def _read_csv(raw: bytes, name: str) -> tuple[pd.DataFrame, list[str]]:
    text, encoding = _decode(raw, name)
    notes = [] if encoding == "utf-8-sig" else [f"decoded the text as {encoding}"]
    sep = sniff_delimiter(text)
    try:
        header = next(csv.reader(io.StringIO(text), delimiter=sep), [])
    except csv.Error as exc:  # a field over csv's limit (128 KiB)
        raise WhyboxError(f"the CSV file {name!r} could not be parsed: {exc}") from None
    _check_width(len(header), name)
    _check_names(header)
    if sep != ",":
        notes.append(f"read columns separated by {sep!r}")
    frame = _parse(text, sep, name)
    if not frame.index.equals(pd.RangeIndex(len(frame))):  # row names 1..n read as a range
        # R's write.table: a header one field short, the row names first on each line
        frame = frame.reset_index(drop=True)
        notes.append("the first column, which has no header, was read as row names")
    elif header and not header[0].strip():
        frame, more = _drop_row_names(frame)
        notes += more
    # pandas parses plain numbers fast; the text columns may be numbers in another notation
    parsed = [c for c in frame.columns if pd.api.types.is_float_dtype(frame[c])]
    frame, more, mark = _interpret(frame, semicolons=sep == ";")
    notes += more
    if parsed and (mark == "comma" or (mark is None and sep == ";")):
        # where the decimal mark may be a comma, '1.234' parsed as 1.234 may mean 1234
        again = _parse(text, sep, name, usecols=parsed).reset_index(drop=True)
        frame[parsed] = again[parsed].to_numpy()
        frame, more, _ = _interpret(frame, semicolons=sep == ";", mark=mark)
        notes += more
    return frame, notes


def sniff_delimiter(text: str, lines: int = 50) -> str:
    """The delimiter of the CSV: comma, semicolon, tab or bar as sniffed, else a space
    where every one of the first `lines` splits on spaces into as many fields as the
    header, or one more (R's write.table: its default separator, row names first)."""
    sample = text[:65536]
    try:
        sep = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        sep = ","
    head = sample.splitlines()[:lines]
    if not head or len(next(csv.reader(head[:1], delimiter=sep))) > 1:
        return sep
    widths = [len(fields) for fields in csv.reader(head, delimiter=" ")]
    if widths[0] > 1 and set(widths[1:]) <= {widths[0], widths[0] + 1} and len(widths) > 1:
        return " "
    return sep


def _parse(text: str, sep: str, name: str, usecols: list[str] | None = None) -> pd.DataFrame:
    """The CSV parsed by pandas: all columns with its types, or `usecols` as text."""
    try:
        return pd.read_csv(
            io.StringIO(text),
            sep=sep,
            skipinitialspace=True,
            usecols=usecols,
            dtype=None if usecols is None else str,
        )
    except pd.errors.EmptyDataError:
        raise WhyboxError(f"the data file {name!r} has no columns; it needs a header row") from None
    except (pd.errors.ParserError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise WhyboxError(f"the CSV file {name!r} could not be parsed: {first}") from None


def _drop_row_names(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """A first column without a name and with a distinct value on every row holds row names
    (R's write.csv, pandas' to_csv), not a feature: dropped, with a note."""
    first = frame.columns[0]
    names = frame[first]
    if names.isna().any() or not names.is_unique:
        return frame, []
    note = "the first column, which has no name, was read as row names, not as a feature"
    return frame.drop(columns=first), [note]


# Numbers in text ------------------------------------------------------------------------


def _interpret(
    frame: pd.DataFrame, semicolons: bool, mark: str | None = None
) -> tuple[pd.DataFrame, list[str], str | None]:
    """Text columns that hold numbers (or true/false) as such, each read under one convention;
    where a column's values read differently under the two and nothing else in the file
    (nor `mark`, the decimal mark found before) tells its decimal mark, a one-line error
    naming the column. Returns the frame, notes and the file's decimal mark where known."""
    readings: dict[str, tuple[pd.Series, pd.Series | None, pd.Series | None]] = {}
    decided: dict[str, str] = {}  # column -> "point" or "comma", where its values tell
    for column in frame.columns:
        values = frame[column]
        if not _is_text(values):
            continue
        text = values.str.strip().replace("", np.nan)
        frame[column] = text
        present = text.dropna()
        if present.empty or not any(p.fullmatch(present.iloc[0]) for p in (POINT, COMMA, SPECIAL)):
            continue  # text, as its first value shows
        point, comma = _plain_numbers(text)
        if point is None:
            point, comma = _numbers(text, POINT, "."), _numbers(text, COMMA, ",")
        if point is None and comma is None:
            continue
        readings[column] = (text, point, comma)
        if comma is None:
            decided[column] = "point"
        elif point is None:
            decided[column] = "comma"
    marks = set(decided.values()) | ({mark} if mark else set())
    file_mark = marks.pop() if len(marks) == 1 else None
    notes: dict[str, list[str]] = {"point": [], "comma": []}
    for column, (text, point, comma) in readings.items():
        read_as = decided.get(column)
        if read_as is None:
            read_as = _undecided(column, text, point, comma, file_mark, semicolons)
        numbers = point if read_as == "point" else comma
        frame[column] = numbers
        shown = text.dropna()
        unusual = shown[shown.str.contains(f"[{',' if read_as == 'point' else '.,'}{SPACES}]")]
        if len(unusual):
            notes[read_as].append((column, unusual.iloc[0], numbers[unusual.index[0]]))
    for column in frame.columns:
        if column not in readings and _is_text(frame[column]):
            frame[column] = _booleans(frame[column])
    said = [_number_note(read_as, found) for read_as, found in notes.items() if found]
    return frame, said, file_mark


def _is_text(values: pd.Series) -> bool:
    """Text and missing values only (object or string dtype, as pandas 2 and 3 read it)."""
    return pd.api.types.is_string_dtype(values.dtype) and pd.api.types.infer_dtype(values) in TEXT


def _plain_numbers(text: pd.Series) -> tuple[pd.Series | None, pd.Series | None]:
    """The fast, common case: every value a plain number (as pandas parses it). Read with a
    decimal point, and with a decimal comma where every dot could be a thousands separator
    (1.234), else None; (None, None) where some value is no plain number."""
    point = pd.to_numeric(text, errors="coerce")
    if point.isna().sum() != text.isna().sum() or point.isna().all():
        return None, None
    dotted = text.str.contains(".", regex=False, na=False)
    if not dotted.any():
        return point, point
    if not text[dotted].str.fullmatch(DOT_GROUPED).all():
        return point, None
    return point, pd.to_numeric(text.str.replace(".", "", regex=False))


def _numbers(text: pd.Series, pattern: re.Pattern, decimal: str) -> pd.Series | None:
    """`text` read as numbers with `decimal` as the decimal mark, or None where a value is no
    number under that convention. Integers stay int64 where nothing is missing."""
    present = text.dropna()
    if present.empty or not (present.str.fullmatch(pattern) | present.str.fullmatch(SPECIAL)).all():
        return None
    groups = "." if decimal == "," else ","
    cleaned = text.str.replace(f"[{groups}{SPACES}]", "", regex=True)
    if decimal == ",":
        cleaned = cleaned.str.replace(",", ".", regex=False)
    return pd.to_numeric(cleaned)


def _undecided(
    column: str,
    text: pd.Series,
    point: pd.Series,
    comma: pd.Series,
    file_mark: str | None,
    semicolons: bool,
) -> str:
    """The decimal mark of a column that reads as numbers both ways: the same numbers, or the
    mark the rest of the file uses; values like '1,234' with no such clue are an error."""
    differ = point.ne(comma) & point.notna()
    if not differ.any():
        return "point"
    if file_mark is not None:
        return file_mark
    sample = text[differ].iloc[0]
    if "," not in sample and not semicolons:
        return "point"  # '1.234' in a comma- or tab-separated file: a decimal point, as usual
    mark = "," if "," in sample else "."
    raise WhyboxError(
        f"column {column!r} has numbers like {sample!r}, which could be "
        f"{point[differ].iloc[0]:g} or {comma[differ].iloc[0]:g} ({mark!r} a thousands "
        "separator or the decimal mark), and nothing else in the file tells which; save it "
        "with a decimal point and no thousands separators, or as .xlsx"
    )


def _number_note(mark: str, found: list[tuple[str, str, float]]) -> str:
    columns = name_list([column for column, _, _ in found])
    _, sample, value = found[0]
    kind = "a decimal comma" if mark == "comma" else "a decimal point and thousands separators"
    return f"read numbers with {kind} in column(s) {columns} (e.g. {sample!r} as {value:g})"


def _booleans(values: pd.Series) -> pd.Series:
    """true/false in any case (R writes TRUE/FALSE) as booleans; other text unchanged."""
    present = values.dropna()
    lowered = present.str.lower()
    if present.empty or not lowered.isin(BOOLEANS).all():
        return values
    mapped = values.str.lower().map(BOOLEANS)
    return mapped.astype(bool) if mapped.notna().all() else mapped


# Excel ----------------------------------------------------------------------------------


def _read_zip(raw: bytes, name: str) -> tuple[pd.DataFrame, list[str]]:
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise WhyboxError(f"the zip file {name!r} is damaged: {exc}") from None
    names = {m.filename for m in members}
    if "xl/workbook.bin" in names:
        raise WhyboxError(
            f"the data file {name!r} is a binary Excel workbook (.xlsb); save it as .xlsx or CSV"
        )
    if "xl/workbook.xml" not in names:
        raise WhyboxError(
            f"the data file {name!r} is a zip archive, but this model takes {TABLES}; "
            "give one table from it (images need an image model)"
        )
    declared = sum(m.file_size for m in members)
    if declared > UNPACKED_MB.bytes():
        raise UNPACKED_MB.exceeded(
            f"the Excel file {name!r} unpacks to {declared / 2**20:,.0f} MB",
            "save the sheet as CSV or Parquet",
        )
    return _read_xlsx(raw, name)


def _read_xlsx(raw: bytes, name: str) -> tuple[pd.DataFrame, list[str]]:
    """The first sheet, its first row the header. Read-only and values only: formulas are
    never evaluated (their cached results are read), macros never run."""
    from openpyxl import load_workbook

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl warns of styles and extensions it skips
            book = load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
            try:
                sheets = book.sheetnames
                rows = _sheet_rows(book.worksheets[0], name) if book.worksheets else []
            finally:
                book.close()
    except WhyboxError:
        raise
    except Exception as exc:  # openpyxl and its XML parser raise many types
        raise WhyboxError(f"the Excel file {name!r} could not be read: {exc}") from None
    if not rows:
        raise WhyboxError(f"the first sheet of the Excel file {name!r} is empty")
    header = ["" if h is None else str(h).strip() for h in rows[0]]
    _check_names([h for h in header if h])
    frame = pd.DataFrame(
        rows[1:],
        columns=[h or f"Unnamed: {i}" for i, h in enumerate(header)],
        dtype=object,
    )
    notes = [f"read the first sheet, {sheets[0]!r}, of {len(sheets)}"] if len(sheets) > 1 else []
    if not header[0]:
        frame, more = _drop_row_names(frame)
        notes += more
    frame = frame.map(
        lambda v: np.nan if v is None or (isinstance(v, str) and v.strip() in MISSING) else v
    )
    frame, more, _ = _interpret(frame, semicolons=False)
    return frame.infer_objects(), notes + more


def _sheet_rows(sheet, name: str) -> list[tuple]:
    """The sheet's non-empty rows, cut to its last non-empty column, within the limits."""
    rows, width = [], 0
    for row in sheet.iter_rows(values_only=True):
        _check_width(len(row), name)
        filled = [i for i, v in enumerate(row) if v is not None and str(v).strip()]
        if not filled:
            continue
        rows.append(row)
        width = max(width, filled[-1] + 1)
        if len(rows) > ROWS.value() + 1:
            raise ROWS.exceeded(
                f"the data file {name!r} has more than {ROWS.value():,} rows",
                "explain a sample of them",
            )
    return [tuple(row[:width]) + (None,) * (width - len(row)) for row in rows]


# R --------------------------------------------------------------------------------------


def _read_r(raw: bytes, name: str, workspace: bool) -> tuple[pd.DataFrame, list[str]]:
    """A data frame from saveRDS (.rds) or save (.RData): parsed, never evaluated. Factors
    become text, NA missing; row names are left out."""
    import rdata

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # rdata warns of R classes it has no type for
            converted = rdata.conversion.convert(rdata.parser.parse_data(raw))
    except Exception as exc:  # a damaged or unusual file: rdata raises many types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise WhyboxError(
            f"the R file {name!r} could not be read: {first}; "
            "save the data frame with saveRDS() or write.csv()"
        ) from None
    notes = []
    if workspace:
        frames = [key for key, value in converted.items() if isinstance(value, pd.DataFrame)]
        if len(frames) != 1:
            found = f"data frames {name_list(frames)}" if frames else "no data frame"
            raise WhyboxError(
                f"the R data file {name!r} holds {found} (objects: {name_list(list(converted))}); "
                "save the one data frame to explain, e.g. saveRDS(frame, 'data.rds')"
            )
        converted = converted[frames[0]]
        notes.append(f"read the data frame {frames[0]!r} from the R data file")
    if not isinstance(converted, pd.DataFrame):
        raise WhyboxError(
            f"the R file {name!r} holds a {type(converted).__name__}, not a data frame; "
            "save a data.frame, e.g. saveRDS(as.data.frame(x), 'data.rds')"
        )
    _check_names(list(converted.columns))
    if not pd.api.types.is_integer_dtype(converted.index):
        notes.append(f"left out the R row names (e.g. {str(converted.index[0])!r})")
    frame = pd.DataFrame({str(c): _plain(converted[c]) for c in converted.columns})
    return frame, notes


def _plain(values: pd.Series) -> np.ndarray:
    """A column of R's types as plain NumPy: factors and strings as text (NaN missing),
    nullable integers and logicals as numbers (float where NA)."""
    if isinstance(values.dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(values):
        return values.astype(object).where(values.notna(), np.nan).to_numpy()
    if isinstance(values.dtype, pd.api.extensions.ExtensionDtype):
        if values.isna().any():
            return values.astype(np.float64).to_numpy()
        return values.to_numpy(dtype=values.dtype.numpy_dtype)
    return values.to_numpy()


def number_text(value: float, digits: int = 4) -> str:
    """`value` to `digits` significant digits, in plain notation with thousands separated
    (2,000 and 0.0012, never 2e+03)."""
    rounded = float(f"{value:.{digits}g}")
    if rounded == 0 or not math.isfinite(rounded):
        return f"{rounded:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(rounded))))
    text = f"{rounded:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
