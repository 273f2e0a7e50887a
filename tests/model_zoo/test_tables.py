"""Tables as people's tools write them: Excel's CSV in Europe and the US, R's write.csv,
.xlsx workbooks, R's saveRDS and save files; and what is not a table, named."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import struct
import zipfile

import numpy as np
import pandas as pd
import pytest
import rdata
from openpyxl import Workbook

from whybox.model_zoo import WhyboxError, load_data
from whybox.model_zoo.tables import read_table, table_columns


def csv_text(rows: list[list], delimiter: str = ",", **options) -> bytes:
    """Rows written by Python's csv module, as spreadsheets write them (CRLF lines)."""
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, **options).writerows(rows)
    return out.getvalue().encode()


# CSV dialects --------------------------------------------------------------------------


def test_excel_in_europe_semicolons_and_decimal_commas():
    frame, notes = read_table(b"Age;Income\r\n35;1.234,5\r\n40;980,25\r\n", "europe.csv")
    assert frame["Income"].tolist() == [1234.5, 980.25]
    assert frame["Age"].tolist() == [35, 40]
    assert any("decimal comma" in n and "'1.234,5' as 1234.5" in n for n in notes), notes
    assert any("';'" in n for n in notes)


def test_us_thousands_separators_quoted():
    raw = csv_text([["Age", "Income"], [35, "1,234.5"], [40, "12,000"]])
    frame, notes = read_table(raw, "us.csv")
    assert frame["Income"].tolist() == [1234.5, 12000.0]
    assert any("thousands separators" in n and "'Income'" in n for n in notes), notes


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        (["1 234,5", "2 000,75"], [1234.5, 2000.75]),  # French, space
        (["1\u00a0234,5", "2\u00a0000,75"], [1234.5, 2000.75]),  # Excel: no-break space
        (["1'234.50", "2'000.75"], [1234.5, 2000.75]),  # Swiss apostrophe
        (["1,5E+03", "2,5"], [1500.0, 2.5]),  # Excel's scientific format with a comma
    ],
)
def test_thousands_and_decimals_in_other_locales(cells, expected):
    raw = ("x;y\n" + "".join(f"{c};1\n" for c in cells)).encode("utf-8")
    assert read_table(raw, "locale.csv")[0]["x"].tolist() == expected


def test_a_column_decided_by_the_rest_of_the_file():
    # '1,234' alone could be either; the other column shows commas separate thousands
    raw = csv_text([["a", "b"], ["1,234", "1,234.5"], ["2,500", "3.25"]])
    frame, _ = read_table(raw, "mixed.csv")
    assert frame["a"].tolist() == [1234, 2500]


def test_ambiguous_numbers_are_one_line_naming_the_column_and_a_value():
    raw = csv_text([["Age", "Income"], [35, "1,234"], [40, "2,500"]])
    with pytest.raises(WhyboxError) as caught:
        read_table(raw, "unclear.csv")
    message = str(caught.value)
    assert "\n" not in message
    assert "'Income'" in message and "'1,234'" in message and "1234 or 1.234" in message
    assert "save it with a decimal point and no thousands separators" in message


def test_dots_in_a_semicolon_file_with_no_other_clue_are_ambiguous():
    with pytest.raises(WhyboxError, match="'Income' has numbers like '1.234'"):
        read_table(b"Age;Income\n35;1.234\n40;2.500\n", "semi.csv")


def test_plain_csv_reads_as_before():
    frame, notes = read_table(b"a,b,c\n1,1.250,x\n2,2.5,y\n", "plain.csv")
    assert frame["a"].dtype == np.int64 and frame["b"].tolist() == [1.25, 2.5]
    assert frame["c"].tolist() == ["x", "y"]  # text stays text
    assert notes == []


def test_r_write_csv_row_names_and_missing_values():
    # write.csv(df): a quoted empty first header, quoted row names, NA unquoted, strings quoted
    raw = (
        b'"","Age","Income","City","Member"\n'
        b'"1",35,1234.5,"Paris",TRUE\n'
        b'"2",NA,NA,NA,FALSE\n'
        b'"3",41,"NA","",NA\n'
        b'"4",52,NaN,"Rome",TRUE\n'
    )
    frame, notes = read_table(raw, "r.csv")
    assert list(frame.columns) == ["Age", "Income", "City", "Member"]
    assert frame["Age"].isna().tolist() == [False, True, False, False]
    assert frame["Income"].isna().tolist() == [False, True, True, True]
    assert frame["City"].isna().tolist() == [False, True, True, False]
    assert frame["Member"].tolist()[:2] == [True, False] and pd.isna(frame["Member"][2])
    assert any("row names" in n for n in notes), notes


def test_r_write_table_space_separated_with_row_names():
    # write.table(df, "x.txt"): space-separated, strings quoted, a header one field short
    raw = (
        b'"Age" "Income" "City" "Member"\n'
        b'"1" 35 1234.5 "New York" TRUE\n'
        b'"2" NA NA NA FALSE\n'
        b'"3" 41 2000 "Rome" NA\n'
    )
    frame, notes = read_table(raw, "r.txt")
    assert list(frame.columns) == ["Age", "Income", "City", "Member"]
    assert frame["City"].tolist()[::2] == ["New York", "Rome"] and pd.isna(frame["City"][1])
    assert frame["Income"].isna().tolist() == [False, True, False]
    assert any("separated by ' '" in n for n in notes) and any("row names" in n for n in notes)
    # write.table(df, row.names = FALSE); a one-column file whose name has a space is not
    frame, _ = read_table(b'"a" "b"\n1 "x y"\n2 "z"\n', "r.txt")
    assert frame.to_dict("list") == {"a": [1, 2], "b": ["x y", "z"]}
    frame, notes = read_table(b"monthly income\n1200\n1500\n", "one.csv")
    assert list(frame.columns) == ["monthly income"] and notes == []


def test_pandas_index_column_is_row_names_too():
    raw = pd.DataFrame({"a": [1.5, 2.5]}).to_csv().encode()
    frame, notes = read_table(raw, "pandas.csv")
    assert list(frame.columns) == ["a"] and any("row names" in n for n in notes)


def test_utf8_bom_and_windows_1252():
    frame, notes = read_table("\ufeffÂge;Revenu\n35;1,5\n".encode("utf-8"), "bom.csv")
    assert list(frame.columns) == ["Âge", "Revenu"] and frame["Revenu"].tolist() == [1.5]
    frame, notes = read_table("Âge;Revenu\n35;1,5\n".encode("cp1252"), "ansi.csv")
    assert list(frame.columns) == ["Âge", "Revenu"]
    assert any("cp1252" in n for n in notes)


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress])
def test_compressed_csv(compress):
    frame, notes = read_table(compress(b"a;b\n1,5;2\n"), "data.csv.gz")
    assert frame["a"].tolist() == [1.5] and any("unpacked" in n for n in notes)


def test_load_data_matches_a_european_file_to_the_model(binary_mlp, dataset):
    raw = dataset.frame.to_csv(index=False, sep=";", decimal=",").encode("cp1252")
    data = load_data(raw, binary_mlp, name="europe.csv")
    np.testing.assert_allclose(data.values, dataset.values)


# Excel -----------------------------------------------------------------------------------


def xlsx(rows: list[list], *more_sheets: str) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = "Data"
    for row in rows:
        sheet.append(row)
    for name in more_sheets:
        book.create_sheet(name).append(["other", 1])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_xlsx_first_sheet_header_numbers_text_and_blanks():
    raw = xlsx(
        [["Age", "Income", "City"], [35, 1234.5, "Paris"], [40, None, "Rome"], [], [41, 10, ""]],
        "Notes",
    )
    frame, notes = read_table(raw, "book.xlsx")
    assert list(frame.columns) == ["Age", "Income", "City"]
    assert frame["Age"].tolist() == [35, 40, 41]
    assert frame["Income"].isna().tolist() == [False, True, False]
    assert frame["City"].isna().tolist() == [False, False, True]
    assert any("'Data', of 2" in n for n in notes), notes


def test_xlsx_missing_markers_in_a_number_column_and_other_text_named(binary_mlp, dataset):
    """Excel users type N/A or get #N/A from a lookup; both are missing. Other text in a
    number column is an error naming the column, a value and its row."""
    raw = xlsx([["Age", "Income"], [35, 1234.5], [40, "N/A"], [41, "#N/A"], [50, " n/a "]])
    frame, _ = read_table(raw, "book.xlsx")
    assert frame["Income"].isna().tolist() == [False, True, True, True]
    assert frame["Income"].dtype == np.float64
    frame = dataset.frame.head(6).astype(object)
    frame.iloc[4, 1] = "-"
    frame.iloc[5, 1] = "?"
    names = [dataset.feature_names]
    with pytest.raises(WhyboxError) as caught:
        load_data(xlsx(names + frame.values.tolist()), binary_mlp, name="book.xlsx")
    message = str(caught.value)
    assert f"column(s) '{dataset.feature_names[1]}' ('-' in row 4, 2 row(s) in all)" in message
    assert "\n" not in message


def test_xlsx_from_pandas_with_its_index_and_formulas_are_not_evaluated():
    raw = xlsx([[None, "a", "b"], [0, 1.5, "=1+1"], [1, 2.5, "=SUM(A1:A2)"]])
    frame, notes = read_table(raw, "pandas.xlsx")
    assert list(frame.columns) == ["a", "b"] and frame["a"].tolist() == [1.5, 2.5]
    # no cached result was saved (openpyxl never computes): the cells read as missing
    assert frame["b"].isna().all()


def test_empty_workbook():
    with pytest.raises(WhyboxError, match="first sheet of the Excel file 'e.xlsx' is empty"):
        read_table(xlsx([]), "e.xlsx")


# R ---------------------------------------------------------------------------------------
# R's serialization (XDR, version 3), as saveRDS and save write it, by a minimal writer:
# R is not needed to make the files; rdata's own R-made files are read below as well.

NA_INTEGER = -(2**31)
NA_REAL = struct.pack(">Q", 0x7FF00000000007A2)  # R's NA_real_: a NaN with payload 1954


def _int(value: int) -> bytes:
    return struct.pack(">i", value)


def _chars(text: str | None) -> bytes:
    if text is None:
        return _int(9) + _int(-1)  # NA_STRING
    data = text.encode()
    return _int(9 | (8 << 12)) + _int(len(data)) + data  # CHARSXP, UTF-8


def _attributes(pairs: list[tuple[str, bytes]]) -> bytes:
    out = b""
    for name, value in pairs:
        out += _int(2 | 1 << 10) + _int(1) + _chars(name) + value  # LISTSXP with a tag
    return out + _int(254)  # NILVALUE


def _vector(kind: int, body: bytes, length: int, attributes=(), object_=False) -> bytes:
    flags = kind | (1 << 8 if object_ else 0) | (1 << 9 if attributes else 0)
    return (
        _int(flags) + _int(length) + body + (_attributes(list(attributes)) if attributes else b"")
    )


def r_strings(values: list[str | None], **kw) -> bytes:
    return _vector(16, b"".join(map(_chars, values)), len(values), **kw)


def r_doubles(values: list[float | None]) -> bytes:
    body = b"".join(NA_REAL if v is None else struct.pack(">d", v) for v in values)
    return _vector(14, body, len(values))


def r_factor(values: list[str | None]) -> bytes:
    levels = sorted({v for v in values if v is not None})
    codes = [NA_INTEGER if v is None else levels.index(v) + 1 for v in values]
    attributes = [("levels", r_strings(levels)), ("class", r_strings(["factor"]))]
    return _vector(13, b"".join(map(_int, codes)), len(values), attributes, object_=True)


def r_frame(columns: dict[str, bytes], rows: int) -> bytes:
    attributes = [
        ("names", r_strings(list(columns))),
        ("class", r_strings(["data.frame"])),
        ("row.names", _vector(13, _int(NA_INTEGER) + _int(-rows), 2)),  # compact 1:rows
    ]
    return _vector(19, b"".join(columns.values()), len(columns), attributes, object_=True)


def serialized(item: bytes) -> bytes:
    return b"X\n" + _int(3) + _int(0x040400) + _int(0x030500) + _int(5) + b"UTF-8" + item


def rds(item: bytes) -> bytes:
    return gzip.compress(serialized(item))  # saveRDS compresses with gzip by default


def rdata_file(objects: dict[str, bytes]) -> bytes:
    pairs = b"".join(_int(2 | 1 << 10) + _int(1) + _chars(k) + v for k, v in objects.items())
    return gzip.compress(b"RDX3\n" + serialized(pairs + _int(254)))


CREDIT = r_frame(
    {
        "Age": r_doubles([35.0, None, 52.0]),
        "Home": r_factor(["owner", None, "rent"]),
        "Note": r_strings(["a", None, "c"]),
    },
    rows=3,
)


def test_rds_data_frame_with_a_factor_and_na():
    frame, notes = read_table(rds(CREDIT), "credit.rds")
    assert list(frame.columns) == ["Age", "Home", "Note"]
    assert frame["Age"].isna().tolist() == [False, True, False]
    assert frame["Home"].tolist()[0::2] == ["owner", "rent"] and pd.isna(frame["Home"][1])
    assert isinstance(frame["Home"][0], str)  # a factor is text, not codes
    assert pd.isna(frame["Note"][1])
    assert notes == []


def test_uncompressed_rds_and_rdata_with_one_frame():
    assert read_table(serialized(CREDIT), "plain.rds")[0].shape == (3, 3)
    frame, notes = read_table(rdata_file({"credit": CREDIT}), "work.RData")
    assert frame.shape == (3, 3) and any("'credit'" in n for n in notes)


def test_rdata_with_two_frames_lists_them():
    raw = rdata_file({"train": CREDIT, "test": CREDIT, "n": r_doubles([1.0])})
    with pytest.raises(WhyboxError) as caught:
        read_table(raw, "work.RData")
    message = str(caught.value)
    assert "holds data frames 'train', 'test'" in message and "saveRDS" in message


def test_rds_of_a_vector_is_not_a_table():
    with pytest.raises(WhyboxError, match="holds a .*, not a data frame"):
        read_table(rds(r_doubles([1.0, 2.0])), "v.rds")


@pytest.mark.parametrize("name", ["test_dataframe.rds", "test_dataframe.rda"])
def test_files_made_by_r(name):
    """rdata's own test files, written by R: a factor column and an integer column."""
    frame, _ = read_table((rdata.TESTDATA_PATH / name).read_bytes(), name)
    assert frame["class"].tolist() == ["a", "b", "b"] and frame["value"].tolist() == [1, 2, 3]


def test_damaged_r_file_is_one_line():
    with pytest.raises(WhyboxError, match="the R file 'bad.rds' could not be read"):
        read_table(serialized(_int(77)), "bad.rds")


# Not tables ------------------------------------------------------------------------------


def test_png_and_jpeg_given_as_data_say_so():
    for magic, kind in ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff\xe0", "JPEG")):
        with pytest.raises(WhyboxError) as caught:
            read_table(magic + bytes(64), "photo.csv")
        assert f"is a {kind} image, but this model takes a table" in str(caught.value)
        assert "image model" in str(caught.value)


def test_zip_given_as_data_says_so():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("data.csv", "a,b\n1,2\n")
    with pytest.raises(WhyboxError, match="'d.zip' is a zip archive, but this model takes a table"):
        read_table(out.getvalue(), "d.zip")


def test_a_gzip_bomb_stops_at_the_limit(monkeypatch):
    monkeypatch.setenv("WHYBOX_MAX_UNPACKED_MB", "1")
    with pytest.raises(WhyboxError, match="unpacks to more than the limit of 1 MB"):
        read_table(gzip.compress(b"a\n" + b"1\n" * 2**20), "big.csv.gz")


@pytest.mark.parametrize("index", [False, True])
def test_the_columns_of_a_parquet_file_come_from_its_footer_as_read_table_gives_them(index):
    frame = pd.DataFrame({"age": [30.0, 41.0], "home": ["rent", "own"], "y": [0, 1]})
    if index:
        frame.index = pd.Index(["a", "b"], name="applicant")
    raw = frame.to_parquet()
    names = table_columns(raw)
    assert names == [str(c) for c in read_table(raw)[0].columns] == ["age", "home", "y"]
    read, notes = read_table(raw)
    pd.testing.assert_frame_equal(read, frame)  # values, types and index as pandas wrote them
    with pytest.raises(WhyboxError, match="the Parquet file 'cut.parquet' could not be read"):
        table_columns(raw[: len(raw) // 2] + b"PAR1", "cut.parquet")


def test_the_columns_of_a_csv_file_are_read_tables():
    assert table_columns(b"a;b\n1,5;2\n") == ["a", "b"]
