"""Stream recipient files (CSV or NDJSON, optionally gzipped) into Kafka records.

A :class:`FileSource` reads one line at a time (at most :data:`MAX_RECORD_BYTES` plus a little
at once, so one absurd line cannot exhaust memory), validates it with the same rules as
:func:`~smsblast.segments.record.parse_record`, yields ``(key, value)`` for valid lines and
hands every invalid line to a callback as ``(line number, BadRecord)``. Blank lines are
skipped, not rejected.

* NDJSON: one JSON object per line; a valid line is produced byte for byte (whitespace
  around it stripped).
* CSV: a header row naming an ``msisdn`` column (any case); every other named column becomes
  a string field; columns with an empty header are ignored. The delimiter is the one of
  ``, ; TAB |`` that the header uses most. Quoted fields may span lines; a rejected row is
  reported at the line where it starts. Invalid UTF-8 in a row rejects that row
  (``bad_field``), not the file.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Final, Literal, cast

from smsblast.segments.record import (
    MAX_RECORD_BYTES,
    BadRecord,
    encode_record,
    parse_record,
    recipient_from_object,
)

__all__ = ["FileFormat", "FileSource", "FileUsageError", "RejectCallback", "detect_format"]

FileFormat = Literal["csv", "ndjson"]
RejectCallback = Callable[[int, BadRecord], None]

_EXTENSIONS: Final[dict[str, FileFormat]] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json": "ndjson",
}
_DELIMITERS: Final = (",", ";", "\t", "|")
_BOM: Final = b"\xef\xbb\xbf"
# Read at most this much of a line at once: a record plus a CRLF and some whitespace.
_LINE_LIMIT: Final = MAX_RECORD_BYTES + 16


class FileUsageError(Exception):
    """The file cannot be used at all (unknown format, no header, no msisdn column)."""


def detect_format(path: str | Path) -> FileFormat:
    """Format from the file name: ``.csv``/``.tsv`` or ``.ndjson``/``.jsonl``/``.json``,
    optionally followed by ``.gz``.

    Raises:
        FileUsageError: any other extension.
    """
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    fmt = _EXTENSIONS.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise FileUsageError(
            f"cannot tell the format of {str(path)!r} from its extension; "
            "use --format csv or --format ndjson"
        )
    return fmt


def _open_binary(path: Path) -> BinaryIO:
    if path.suffix.lower() == ".gz":
        return cast(BinaryIO, gzip.GzipFile(path, "rb"))
    return path.open("rb")


class FileSource:
    """Iterate ``(key, value)`` Kafka records from a recipient file, lazily.

    The file is opened (and a CSV header read) in the constructor, so a missing file or a
    bad header fails before anything is produced. Use as a context manager, or call
    :meth:`close`.

    Raises (constructor):
        OSError: the file cannot be opened or read.
        FileUsageError: CSV without a usable header.
    """

    def __init__(self, path: str | Path, fmt: FileFormat, on_reject: RejectCallback) -> None:
        self.path = Path(path)
        self.format: FileFormat = fmt
        self._on_reject = on_reject
        self._file = _open_binary(self.path)
        self.lines_read = 0
        self.skipped_blank = 0
        self._header: list[str] = []
        self._msisdn_col = -1
        self._reader: Iterator[list[str]] | None = None
        self._lines: _TextLines | None = None
        try:
            if fmt == "csv":
                self._open_csv()
        except BaseException:
            self._file.close()
            raise

    def __enter__(self) -> FileSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        if self.format == "csv":
            return self._iter_csv()
        return self._iter_ndjson()

    # NDJSON ---------------------------------------------------------------------------

    def _iter_ndjson(self) -> Iterator[tuple[bytes, bytes]]:
        readline = self._file.readline
        reject = self._on_reject
        line_no = 0
        while True:
            line = readline(_LINE_LIMIT)
            if not line:
                return
            line_no += 1
            self.lines_read = line_no
            if line_no == 1 and line.startswith(_BOM):
                line = line[len(_BOM) :]
            if len(line) == _LINE_LIMIT and not line.endswith(b"\n"):
                self._skip_rest_of_line()
                reject(line_no, BadRecord("too_large", f"line over {MAX_RECORD_BYTES} bytes"))
                continue
            value = line.strip()
            if not value:
                self.skipped_blank += 1
                continue
            try:
                recipient = parse_record(value)
            except BadRecord as exc:
                reject(line_no, exc)
                continue
            yield recipient.msisdn.encode("ascii"), value

    def _skip_rest_of_line(self) -> None:
        while True:
            chunk = self._file.readline(_LINE_LIMIT)
            if not chunk or chunk.endswith(b"\n"):
                return

    # CSV -------------------------------------------------------------------------------

    def _open_csv(self) -> None:
        text = io.TextIOWrapper(
            self._file, encoding="utf-8-sig", errors="surrogateescape", newline=""
        )
        lines = _TextLines(text.readline)
        header_line = ""
        for line in lines:
            if line.strip():
                header_line = line
                break
        if not header_line:
            raise FileUsageError(f"{self.path}: empty file, expected a CSV header line")
        if lines.oversized_at == lines.line_no:
            raise FileUsageError(f"{self.path}: the header line is too long")
        delimiter = max(_DELIMITERS, key=header_line.count)
        header = next(csv.reader([header_line], delimiter=delimiter))
        names = [h.strip() for h in header]
        lowered = [n.lower() for n in names]
        if lowered.count("msisdn") != 1:
            found = "no" if "msisdn" not in lowered else "more than one"
            raise FileUsageError(
                f"{self.path}: the CSV header has {found} 'msisdn' column "
                f"(line {lines.line_no}: {len(names)} columns)"
            )
        seen: set[str] = set()
        for n in names:
            if n and n in seen:
                raise FileUsageError(f"{self.path}: column {n!r} appears twice in the header")
            seen.add(n)
        self._msisdn_col = lowered.index("msisdn")
        names[self._msisdn_col] = "msisdn"
        self._header = names
        self._lines = lines
        self._reader = csv.reader(lines, delimiter=delimiter, strict=True)

    def _iter_csv(self) -> Iterator[tuple[bytes, bytes]]:
        assert self._reader is not None and self._lines is not None
        reader, lines, reject = self._reader, self._lines, self._on_reject
        header = self._header
        width = len(header)
        named = [(i, n) for i, n in enumerate(header) if n]
        while True:
            start = lines.line_no + 1
            try:
                row = next(reader)
            except StopIteration:
                self.lines_read = lines.line_no
                return
            except csv.Error as exc:
                self.lines_read = lines.line_no
                if lines.oversized_at >= start:
                    reject(start, BadRecord("too_large", f"line over {MAX_RECORD_BYTES} bytes"))
                else:
                    reject(start, BadRecord("bad_field", f"malformed CSV: {exc}"))
                continue
            self.lines_read = lines.line_no
            if lines.oversized_at >= start:
                reject(start, BadRecord("too_large", f"line over {MAX_RECORD_BYTES} bytes"))
                continue
            if not row or (len(row) == 1 and not row[0].strip()):
                self.skipped_blank += 1
                continue
            if len(row) != width:
                reject(start, BadRecord("bad_field", f"{len(row)} columns, header has {width}"))
                continue
            obj = {n: row[i] for i, n in named}
            try:
                value = encode_record(obj)
            except UnicodeEncodeError:
                reject(start, BadRecord("bad_field", "row is not valid UTF-8"))
                continue
            if len(value) > MAX_RECORD_BYTES:
                reject(start, BadRecord("too_large", f"{len(value)} bytes as JSON"))
                continue
            try:
                recipient = recipient_from_object(obj)
            except BadRecord as exc:
                reject(start, exc)
                continue
            yield recipient.msisdn.encode("ascii"), value


class _TextLines:
    """Physical lines of a text file for :mod:`csv`, each read with a length limit.

    An over-long line is consumed and replaced by an empty line; ``oversized_at`` records its
    number so the caller can reject the row that contained it.
    """

    def __init__(self, readline: Callable[[int], str]) -> None:
        self._readline = readline
        self.line_no = 0
        self.oversized_at = 0

    def __iter__(self) -> _TextLines:
        return self

    def __next__(self) -> str:
        line = self._readline(_LINE_LIMIT)
        if not line:
            raise StopIteration
        self.line_no += 1
        if len(line) == _LINE_LIMIT and line[-1] not in "\r\n":
            self.oversized_at = self.line_no
            while True:
                chunk = self._readline(_LINE_LIMIT)
                if not chunk or chunk[-1] in "\r\n":
                    break
            return "\n"
        return line
