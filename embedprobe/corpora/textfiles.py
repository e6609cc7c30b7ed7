"""Reading corpus metadata files (manifests, label tables, EmoBox jsonl) with one-sentence errors.

Text is UTF-8; a UTF-8, UTF-16 or UTF-32 byte-order mark is honoured, and UTF-16 without a
mark (every other byte NUL, as some spreadsheet exports write it) is recognised. Anything else
that does not decode (Latin-1, Windows-1252 ...) is a :class:`CorpusError` naming the file,
the line and the byte, and saying to save the file as UTF-8. A CSV row with more cells than
the header, a NUL byte and a JSONL line that is not a JSON object are errors naming the file
and line.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.csv"
    >>> _ = p.write_bytes("path,label\\na.wav,ang\\n".encode("utf-16"))
    >>> read_csv(p, "manifest")
    [(2, {'path': 'a.wav', 'label': 'ang'})]
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from pathlib import Path
from typing import Any

from embedprobe.errors import CorpusError, EmbedprobeError

_BOMS = (  # longest first: the UTF-32 LE mark starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)


def _encoding(data: bytes) -> str:
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name
    head = data[:512]
    if len(head) >= 4:
        even, odd = head[0::2], head[1::2]
        if odd.count(0) > 0.4 * len(odd) and even.count(0) == 0:
            return "utf-16-le"
        if even.count(0) > 0.4 * len(even) and odd.count(0) == 0:
            return "utf-16-be"
    return "utf-8"


def read_text(path: Path, who: str, error: type[EmbedprobeError] = CorpusError) -> str:
    """The text of ``path`` (see the module docstring for the encodings read).

    Raises:
        CorpusError (or ``error``): the file cannot be read, or is not UTF-8/UTF-16/UTF-32 text.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise error(f"{who}: cannot read {path} ({e.strerror or e}). Fix: check the path and "
                          "its permissions.") from None
    encoding = _encoding(data)
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[:e.start].decode(encoding, errors="replace").count("\n") + 1
        raise error(
            f"{who}: {path} line {line} is not {encoding.split('-sig')[0].upper()} text (byte "
            f"0x{data[e.start]:02x}, e.g. a Latin-1 or Windows-1252 accent). Fix: save it as UTF-8."
        ) from None
    if "\x00" in text:
        line = text[:text.index("\x00")].count("\n") + 1
        raise error(f"{who}: {path} line {line} holds a NUL byte, so it is not a text file (a "
                          "spreadsheet or binary file?). Fix: save it as UTF-8 text.")
    return text


def read_csv(path: Path, who: str, delimiter: str = ",") -> list[tuple[int, dict[str, str]]]:
    """``(line number, row)`` for every non-empty data row; keys and cells are stripped.

    Short rows are padded with ``""``. Raises ``CorpusError`` for a row with more cells than
    the header, for a file that is not CSV (e.g. NUL bytes) and for undecodable text.
    """
    reader = csv.reader(io.StringIO(read_text(path, who), newline=""), delimiter=delimiter)
    rows: list[tuple[int, dict[str, str]]] = []
    header: list[str] | None = None
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header = [c.strip() for c in cells]
                continue
            if len(cells) > len(header):
                extra = ", ".join(repr(c) for c in cells[len(header):][:3])
                raise CorpusError(
                    f"{who}: {path} line {reader.line_num} has {len(cells)} cells but the header has "
                    f"{len(header)} ({delimiter.join(header)}); extra: {extra}. Fix: quote cells "
                    f"that contain {delimiter!r} or remove the extra cells."
                )
            cells = [*cells, *[""] * (len(header) - len(cells))]
            rows.append((reader.line_num, {k: v.strip() for k, v in zip(header, cells, strict=True)}))
    except csv.Error as e:
        raise CorpusError(f"{who}: {path} line {reader.line_num} is not valid CSV ({e}). Fix: save it "
                          "as a plain UTF-8 CSV file.") from None
    return rows


def read_jsonl(path: Path, who: str) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-empty line; each line must be a JSON object."""
    out = []
    for n, line in enumerate(read_text(path, who).splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise CorpusError(f"{who}: {path} line {n} is not JSON ({e}). Fix: one JSON object per "
                              "line.") from None
        if not isinstance(obj, dict):
            raise CorpusError(f"{who}: {path} line {n} is a JSON {_kind(obj)}, not an object. Fix: one "
                              'JSON object per line, e.g. {"path": "a.wav", "label": "ang"}.')
        out.append((n, obj))
    return out


def read_json_object(path: Path, who: str) -> dict[str, Any]:
    """A JSON file holding one object (e.g. EmoBox's ``label_map.json``)."""
    try:
        obj = json.loads(read_text(path, who))
    except json.JSONDecodeError as e:
        raise CorpusError(f"{who}: {path} is not JSON ({e}). Fix: correct or remove the file.") from None
    if not isinstance(obj, dict):
        raise CorpusError(f"{who}: {path} is a JSON {_kind(obj)}, not an object. Fix: correct or "
                          "remove the file.")
    return obj


def _kind(obj: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", int: "number", float: "number",
            type(None): "null"}.get(type(obj), type(obj).__name__)
