"""Names written into the project's outputs, each escaped for the format it goes into; and the one
format without escapes, a folder's name, which `split` checks every class and group name against.

A class name comes from a folder's name, a labels table or params.yaml (a model file's, in predict),
and may hold any character a file name can: `a,b "q" |pipe|`, `=1+1`, `<img src=x onerror=...>`. Every
writer of a name (and of a path, which holds one) goes through these, so that it stays one table cell,
one CSV field, plain text: never markup, a formula, a mathtext expression or the end of a <script>.
Readers of the project's own CSV files undo csv_cell with csv_dict_rows.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Iterable, Iterator
from typing import TextIO

MAX_NAME_BYTES = 255  # the longest file name of ext4, XFS, Btrfs (bytes), APFS and NTFS (characters)
# Unicode's controls (C0, DEL, C1), lone surrogates (a name's bytes that are not UTF-8), line and paragraph breaks
CONTROL = ("Cc", "Cs", "Zl", "Zp")
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")  # reorder the text shown

# OWASP's advice on CSV injection: a spreadsheet runs a cell that starts with one of these as a
# formula (the fullwidth forms too: some spreadsheets fold them to ASCII); a leading apostrophe makes it text.
FORMULA_START = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")
TEXT_MARK = "'"

# Markdown: HTML's characters as entities (no tag, no entity of the name's own is ever live), the
# punctuation that opens inline markup or a link and a table's pipe escaped, a line break a space.
# An underscore between letters or digits stays (it emphasises nothing there): CIFAR's aquarium_fish.
MARKDOWN = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\n": " ", "\r": " "} | {c: "\\" + c for c in "\\`*_[]|~$"}
MARKDOWN_SPECIAL = re.compile("[" + re.escape("".join(MARKDOWN)) + "]")
CODE_SPAN_BREAKERS = frozenset("`|&<>")

# DVC's plots page puts each chart's data in a <script> block as json.dumps writes it (dvc_render's
# VegaRenderer.partial_html), `<` unescaped, whatever the data file's own escaping was: `</script>` or
# `<!--<script>` in a value would end the block or swallow the page. Plotted text shows look-alikes.
PLOT_LOOK_ALIKES = str.maketrans({"<": "\uff1c", ">": "\uff1e"})


def folder_name_problem(name: str) -> str | None:
    """Why `name` cannot be a folder's name (a class's, under data/split), or None: a format with no escapes."""
    if not name:
        return "is empty"
    if "/" in name or "\\" in name or "\0" in name:
        return "has a '/', a '\\' or a NUL"
    if name.startswith(".") or ".." in name:
        return "starts with '.' or has '..'"
    if any(unicodedata.category(char) in CONTROL or char in BIDI_CONTROLS for char in name):
        return "has a control character (a line break, a tab, an escape, a text direction change)"
    size = len(name.encode())
    return f"is {size} bytes long in UTF-8, over the {MAX_NAME_BYTES} of a file name" if size > MAX_NAME_BYTES else None


def csv_cell(value) -> str:
    """A CSV field no spreadsheet runs as a formula: an apostrophe before a formula's first character,
    and before a leading apostrophe, so that csv_value reads every field back exactly."""
    text = str(value)
    return TEXT_MARK + text if text[:1] in FORMULA_START or text.startswith(TEXT_MARK) else text


def csv_value(field: str) -> str:
    """A field csv_cell wrote, as it was."""
    return field[1:] if field.startswith(TEXT_MARK) else field


class CsvWriter:
    """csv.writer (quoting what needs it) with every field through csv_cell."""

    def __init__(self, file: TextIO):
        self._writer = csv.writer(file)

    def writerow(self, row: Iterable) -> None:
        self._writer.writerow([csv_cell(field) for field in row])

    def writerows(self, rows: Iterable[Iterable]) -> None:
        for row in rows:
            self.writerow(row)


def write_csv_file(path, header: Iterable, rows: Iterable[Iterable]) -> None:
    """A CSV file of the project's: the header, then the rows, each field through csv_cell."""
    with open(path, "w", newline="") as file:
        writer = CsvWriter(file)
        writer.writerow(header)
        writer.writerows(rows)


def csv_dict_rows(file: TextIO) -> Iterator[dict[str, str]]:
    """csv.DictReader's rows of a file CsvWriter wrote, each field as it was before csv_cell."""
    for row in csv.DictReader(file):
        yield {key: csv_value(value) if isinstance(value, str) else value for key, value in row.items()}


def markdown_text(value) -> str:
    """Text in a Markdown line or table cell, shown as it is."""
    text = str(value)

    def escaped(found: re.Match) -> str:
        char, at = found.group(), found.start()
        if char == "_" and text[at - 1 : at].isalnum() and text[at + 1 : at + 2].isalnum():
            return char
        return MARKDOWN[char]

    return MARKDOWN_SPECIAL.sub(escaped, text)


def markdown_code(value) -> str:
    """`value` as inline code, or as escaped text where a code span would break (a backtick, a table's
    pipe) or would keep `<`, `&` or `>` raw in the file (as a renderer that is not CommonMark shows them)."""
    text = str(value)
    plain = text.strip() == text and text.isprintable() and not CODE_SPAN_BREAKERS.intersection(text)
    return f"`{text}`" if text and plain else markdown_text(text)


def plot_text(value) -> str:
    """Text in a file DVC plots: no `<` or `>` to reach its page's <script> blocks."""
    return str(value).translate(PLOT_LOOK_ALIKES)


def picture_text(value) -> str:
    """Text matplotlib draws as it is: each `$` escaped, so no name starts a mathtext expression
    (an unbalanced one would fail the figure)."""
    return str(value).replace("$", "\\$")


def terminal_text(value) -> str:
    """Text on one line of a terminal: as it is, or quoted with escapes (as repr) where it holds a
    control character (a newline, an escape sequence) or other unprintable one."""
    text = str(value)
    return text if text.isprintable() else repr(text)
