"""Safe reading and writing of tables in .xlsx and .csv files.

Uploads come from people's desktops and, now and then, from someone hostile.
`read_table()` looks at the bytes, not the file name; refuses zip bombs from the
archive's directory before anything is inflated; relies on defusedxml (which
openpyxl uses whenever it is installed) against XML entity bombs; streams the
sheet with openpyxl's read-only reader; and caps rows and columns. Whatever is
wrong with a file, the caller gets a SpreadsheetError with a message for the user.

The writers neutralise text that a spreadsheet would run as a formula (CSV and
formula injection) by prefixing a single quote, and the reader removes that
quote again, so an export imports back exactly.
"""
import codecs
import csv
import datetime
import io
import re
import zipfile
from decimal import Decimal

from defusedxml import DefusedXmlException
from openpyxl import Workbook, load_workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from i18n import lazy_gettext as _l
from models.base import DomainError

MAX_FILE_BYTES = 10 * 1024 * 1024  # the app's MAX_CONTENT_LENGTH
MAX_ROWS = 50_000
MAX_COLUMNS = 100
# Zip bomb limits, checked against the archive's directory before inflating.
# A 50,000-row sheet written by openpyxl inflates to ~55 MB at a ratio near 10.
MAX_UNCOMPRESSED_BYTES = 64 * 1024 * 1024
MAX_COMPRESSION_RATIO = 100
MAX_ZIP_MEMBERS = 500

XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_MIMETYPE = "text/csv; charset=utf-8"

# A cell starting with one of these is run as a formula by Excel, WPS or LibreOffice.
FORMULA_TRIGGERS = frozenset("=+-@\t\r\n")

# How often read_table() reports its progress.
PROGRESS_ROWS = 1000
# Excel numbers rows up to here; openpyxl would follow a hostile row number further.
EXCEL_MAX_ROWS = 1_048_576
# The signature of an old .xls (and of a password-protected .xlsx): OLE2.
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


class SpreadsheetError(DomainError):
    """The file cannot be read as a table; the message says why, for the user."""


# --- Formula neutralisation ----------------------------------------------------

def neutralise(value):
    """Text that would start a formula, prefixed with a single quote.

    Text that already starts with quotes before such a character gets one more,
    so that `unneutralise()` restores every string exactly. Other values are
    returned as they are: numbers stay numbers.
    """
    if isinstance(value, str) and value.lstrip("'")[:1] in FORMULA_TRIGGERS:
        return "'" + value
    return value


def unneutralise(value):
    """The inverse of `neutralise()`: drop the quote the export added."""
    if isinstance(value, str) and value[:1] == "'" and value.lstrip("'")[:1] in FORMULA_TRIGGERS:
        return value[1:]
    return value


# --- Reading -------------------------------------------------------------------

def read_table(filename, data, max_rows=MAX_ROWS, max_columns=MAX_COLUMNS, progress=None):
    """The first sheet of an .xlsx file, or a .csv file, as a list of rows.

    Row i of the result is row i + 1 as Excel numbers it; a row is a list of
    at most `max_columns` cell values (None for an empty cell). CSV cells are
    text; xlsx cells are text, int, float, bool or datetime, and a number shown
    as a percentage comes back as text like "95.5%", as the user sees it.
    `progress(rows_read, rows_expected)`, when given, is called every
    PROGRESS_ROWS rows.

    Raises SpreadsheetError for a file that is empty, too large, of another
    type than its name says, damaged, hostile (zip or XML bomb), or has more
    than `max_rows` rows or `max_columns` columns.
    """
    if check_upload(filename, data) == "xlsx":
        return _read_xlsx(data, max_rows, max_columns, progress)
    return _read_csv(data, max_rows, max_columns, progress)


def check_upload(filename, data):
    """"xlsx" or "csv": what `data` is, from what can be told without reading it
    (a quick check, for the moment of upload). Raises SpreadsheetError for a file
    that is empty, too large, of another type than its name says, or a zip bomb."""
    if not data:
        raise SpreadsheetError(_l("The file is empty."))
    if len(data) > MAX_FILE_BYTES:
        raise SpreadsheetError(_l("The file is larger than %(size)s MB.",
                                  size=MAX_FILE_BYTES // (1024 * 1024)))
    if data.startswith(OLE2_MAGIC):
        raise SpreadsheetError(_l("This is an old Excel (.xls) or password-protected file. "
                                  "Save it as .xlsx without a password and upload it again."))
    extension = (filename or "").rsplit(".", 1)[-1].lower() if "." in (filename or "") else ""
    if extension not in ("xlsx", "csv"):
        raise SpreadsheetError(_l("Upload an Excel workbook (.xlsx) or a CSV file (.csv)."))
    is_zip = data.startswith(b"PK\x03\x04")
    if extension == "xlsx":
        if not is_zip:
            raise SpreadsheetError(_l("The file is named .xlsx but is not an Excel workbook."))
        _check_archive(data)
    elif is_zip:
        raise SpreadsheetError(_l("The file is named .csv but is an Excel workbook; "
                                  "rename it to .xlsx or save it as CSV."))
    return extension


def _check_archive(data):
    """Refuse a zip bomb or a zip that is no workbook, from the directory alone."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except Exception as error:  # BadZipFile, NotImplementedError, EOFError… on a broken zip
        raise SpreadsheetError(_l("The workbook is damaged and cannot be read.")) from error
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise SpreadsheetError(_l("The workbook has too many parts to be a list of "
                                      "customers."))
        # zipfile never inflates a member beyond its declared size (it stops and
        # fails the CRC check), so the declared sizes bound what openpyxl reads.
        inflated = sum(member.file_size for member in members)
        compressed = sum(member.compress_size for member in members)
        if inflated > MAX_UNCOMPRESSED_BYTES or (
                inflated > 1024 * 1024 and inflated > MAX_COMPRESSION_RATIO * max(compressed, 1)):
            raise SpreadsheetError(_l("The workbook unpacks to far more data than a list of "
                                      "customers holds; it was refused."))
        names = {member.filename for member in members}
        if "[Content_Types].xml" not in names or "xl/workbook.xml" not in names:
            raise SpreadsheetError(_l("The file is a zip archive but not an Excel workbook "
                                      "(.xlsx)."))


def _read_xlsx(data, max_rows, max_columns, progress):
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True,
                                 keep_links=False)
    except Exception as error:  # openpyxl fails in many ways on a damaged or hostile file
        raise _damaged(error) from error
    try:
        if not workbook.worksheets:
            raise SpreadsheetError(_l("The workbook has no sheet with a table."))
        sheet = workbook.worksheets[0]
        rows = []
        # One column past the limit: a value there means too many columns. Rows are
        # padded to the width the sheet declares, so a narrow sheet reads faster.
        width = min(sheet.max_column or max_columns + 1, max_columns + 1)
        expected = min(sheet.max_row or max_rows, max_rows)
        for number, cells in enumerate(sheet.iter_rows(min_row=1, max_row=EXCEL_MAX_ROWS,
                                                       max_col=width)):
            if progress and number % PROGRESS_ROWS == 0:
                progress(min(number, expected), expected)
            if len(rows) < max_rows:
                row = [_xlsx_value(cell) for cell in cells]
                _check_width(row, max_columns)
                rows.append(row[:max_columns])
            elif any(cell.value is not None for cell in cells):
                raise _too_many_rows(max_rows)
    except SpreadsheetError:
        raise
    except Exception as error:  # the sheet XML is parsed lazily, so errors surface here
        raise _damaged(error) from error
    finally:
        workbook.close()
    return rows


def _damaged(error):
    """The SpreadsheetError for an exception openpyxl raised (it wraps some in ValueError)."""
    causes = []
    while error is not None and len(causes) < 10:
        causes.append(error)
        error = error.__cause__ or error.__context__
    if any(isinstance(cause, DefusedXmlException) for cause in causes):
        # An XML entity (billion laughs), DTD or external reference: an attack.
        return SpreadsheetError(_l("The workbook contains XML that is not allowed; "
                                   "it was refused."))
    return SpreadsheetError(_l("The workbook is damaged and cannot be read."))


def _xlsx_value(cell):
    value = cell.value
    if isinstance(value, str):
        return unneutralise(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and \
            "%" in (cell.number_format or ""):
        percent = Decimal(repr(value)) * 100
        return f"{percent.normalize():f}%"
    return value


def _read_csv(data, max_rows, max_columns, progress):
    text = _decode(data)
    delimiter = _sniff_delimiter(text)
    expected = min(text.count("\n") + 1, max_rows)
    rows = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for number, row in enumerate(reader):
            if progress and number % PROGRESS_ROWS == 0:
                progress(min(number, expected), expected)
            if len(rows) >= max_rows:
                if any(row):
                    raise _too_many_rows(max_rows)
                continue
            values = [unneutralise(v) if v != "" else None for v in row]
            _check_width(values, max_columns)
            rows.append(values[:max_columns])
    except csv.Error as error:
        raise SpreadsheetError(_l("The CSV file cannot be read near line %(line)s.",
                                  line=reader.line_num)) from error
    return rows


def _decode(data):
    """CSV text: UTF-8 with or without BOM, UTF-16 with BOM, else GB18030 (what
    Chinese Excel writes when it saves "CSV (comma delimited)")."""
    if data.startswith(codecs.BOM_UTF8):
        candidates = [("utf-8", data[len(codecs.BOM_UTF8):])]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = [("utf-16", data)]
    else:
        if b"\x00" in data:
            raise SpreadsheetError(_l("The file contains binary data (NUL bytes); "
                                      "it is not a CSV text file."))
        candidates = [("utf-8", data), ("gb18030", data)]
    for encoding, raw in candidates:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" in text or _CONTROL_RE.search(text):
            raise SpreadsheetError(_l("The file contains binary data; it is not a CSV text "
                                      "file."))
        return text
    raise SpreadsheetError(_l("The text of the CSV file is neither UTF-8 nor GBK; "
                              "save it again as CSV UTF-8."))


# Control characters no text file holds (tab, CR and LF are fine).
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _sniff_delimiter(text):
    head = text[:20_000].splitlines()[:20]
    counts = {d: sum(line.count(d) for line in head) for d in (",", "\t", ";")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _check_width(row, max_columns):
    if any(v is not None and v != "" for v in row[max_columns:]):
        raise SpreadsheetError(_l("The table has more than %(n)s columns.", n=max_columns))


def _too_many_rows(max_rows):
    return SpreadsheetError(_l("The file has more than %(n)s rows; split it into "
                               "smaller files.", n=f"{max_rows:,}"))


# --- Writing -------------------------------------------------------------------

def _sheet_title(title):
    # Excel refuses these characters in sheet names, and more than 31 of them.
    cleaned = re.sub(r"[\[\]:*?/\\]", " ", str(title or "")).strip()
    return cleaned[:31] or "Sheet1"


def _xlsx_cell_value(value):
    if isinstance(value, str):
        # openpyxl refuses control characters that XML cannot hold.
        return neutralise(ILLEGAL_CHARACTERS_RE.sub("", value))
    return value


def write_xlsx(headers, rows, title):
    """An .xlsx workbook (bytes) of one sheet named `title`: a bold header row,
    then `rows`. Text that would start a formula is neutralised; numbers, dates
    and booleans are written as such."""
    rows = rows if isinstance(rows, list) else list(rows)
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(_sheet_title(title))
    width = max([len(headers)] + [len(row) for row in rows[:1]])
    # openpyxl's read-only reader parses a whole sheet once more when it has no
    # <dimension>, and write-only sheets have none unless told: tell it.
    sheet.calculate_dimension = lambda: f"A1:{get_column_letter(max(width, 1))}{len(rows) + 1}"
    for index, header in enumerate(headers, 1):
        sheet.column_dimensions[get_column_letter(index)].width = max(10, min(
            40, 2 * len(str(header)) + 2))
    bold = Font(bold=True)
    header_cells = []
    for header in headers:
        cell = WriteOnlyCell(sheet, value=_xlsx_cell_value(str(header)))
        cell.font = bold
        header_cells.append(cell)
    sheet.append(header_cells)
    for row in rows:
        sheet.append([_xlsx_cell_value(value) for value in row])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def _csv_cell_value(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    return neutralise(str(value))


def write_csv(headers, rows):
    """A CSV file (bytes): UTF-8 with a BOM, so that Chinese Excel reads it right,
    comma-separated, CRLF line ends. Text that would start a formula is
    neutralised; numbers stay numbers."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([_csv_cell_value(str(h)) for h in headers])
    for row in rows:
        writer.writerow([_csv_cell_value(value) for value in row])
    return codecs.BOM_UTF8 + out.getvalue().encode("utf-8")
