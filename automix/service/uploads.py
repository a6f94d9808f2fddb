"""Streaming multipart uploads with a byte cap, written straight into a job's folder.

Starlette's form parser spools files to the system temp folder with no size limit; this one
checks ``Content-Length`` before reading anything, counts every byte received (chunked
uploads have no length), and writes each file part to a numbered ``.part`` file inside the
job folder. The client's file name is kept as data only: it never becomes a path.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from python_multipart.multipart import MultipartParser, parse_options_header

from automix.service.problems import Problem

FORM_OVERHEAD_BYTES = 256 * 1024  # room for the text fields and part headers of one form
MAX_FIELD_BYTES = 64 * 1024  # a text field (settings JSON is about 2 kB)
MAX_PARTS = 64
SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


@dataclass
class UploadedFile:
    """One file part, stored at ``path`` (inside the job folder) with ``size`` bytes."""

    field: str
    filename: str
    path: Path
    size: int = 0


@dataclass
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, list[UploadedFile]] = field(default_factory=dict)


def safe_filename(name: str, default: str = "file") -> str:
    """The last path component of a client's file name, reduced to harmless characters.

    ``../../etc/passwd`` becomes ``passwd``; ``..`` and names of dots only become ``default``.
    """
    base = re.split(r"[\\/]", name)[-1]
    base = SAFE_NAME.sub("_", base).strip(" .")
    return base[:120] or default


def _disposition(headers: dict[bytes, bytes]) -> tuple[str, str | None]:
    _, options = parse_options_header(headers.get(b"content-disposition", b""))
    if b"name" not in options:
        raise Problem(422, "bad-form", "a form part has no name")
    name = options[b"name"].decode("utf-8", "replace")
    filename = options.get(b"filename")
    return name, None if filename is None else filename.decode("utf-8", "replace")


class _Collector:
    """python-multipart callbacks that fill a `Form`, files going to ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.form = folder, Form()
        self.parts = 0
        self.ended = False
        self._headers: dict[bytes, bytes] = {}
        self._field, self._value = b"", b""
        self._name: str = ""
        self._text: bytearray | None = None
        self._file: UploadedFile | None = None
        self._handle: IO[bytes] | None = None

    def callbacks(self) -> dict[str, Any]:
        return {"on_part_begin": self.part_begin, "on_header_field": self.header_field,
                "on_header_value": self.header_value, "on_header_end": self.header_end,
                "on_headers_finished": self.headers_finished, "on_part_data": self.part_data,
                "on_part_end": self.part_end, "on_end": self.end}

    def part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise Problem(413, "too-many-parts", f"a form may have at most {MAX_PARTS} parts")
        self._headers = {}

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field, self._value = b"", b""

    def headers_finished(self) -> None:
        self._name, filename = _disposition(self._headers)
        if filename is None:
            self._text = bytearray()
            return
        path = self.folder / f"upload-{self.parts}.part"
        self._file = UploadedFile(self._name, filename, path)
        self._handle = path.open("wb")

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self._handle is not None and self._file is not None:
            self._handle.write(data[start:end])
            self._file.size += end - start
        elif self._text is not None:
            self._text += data[start:end]
            if len(self._text) > MAX_FIELD_BYTES:
                raise Problem(413, "field-too-large",
                                  f"form field {self._name!r} is over {MAX_FIELD_BYTES} bytes")

    def part_end(self) -> None:
        if self._handle is not None and self._file is not None:
            self._handle.close()
            self.form.files.setdefault(self._name, []).append(self._file)
            self._handle, self._file = None, None
        elif self._text is not None:
            try:
                self.form.fields[self._name] = self._text.decode("utf-8")
            except UnicodeDecodeError:
                raise Problem(422, "bad-form",
                                  f"form field {self._name!r} is not UTF-8 text") from None
            self._text = None

    def end(self) -> None:
        self.ended = True

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


async def read_form(headers: dict[str, str], body: AsyncIterator[bytes], folder: Path,
                    max_bytes: int) -> Form:
    """Parse a multipart/form-data request body into ``folder``, refusing more than
    ``max_bytes`` of body (plus `FORM_OVERHEAD_BYTES`) with `Problem` 413.

    ``headers`` are the request's (lower-case names); nothing is read when its
    ``Content-Length`` is already too large. The caller removes ``folder`` on error.
    """
    limit = max_bytes + FORM_OVERHEAD_BYTES
    declared = headers.get("content-length")
    too_large = f"the upload is larger than the limit of {max_bytes / 1e6:g} MB"
    if declared is not None:
        if not declared.isdigit():
            raise Problem(422, "bad-form", "Content-Length is not a number")
        if int(declared) > limit:
            raise Problem(413, "upload-too-large", too_large)
    content_type, options = parse_options_header(headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in options:
        raise Problem(422, "bad-form", "expected a multipart/form-data body")
    collector = _Collector(folder)
    parser = MultipartParser(options[b"boundary"], collector.callbacks())
    received = 0
    try:
        async for chunk in body:
            received += len(chunk)
            if received > limit:
                raise Problem(413, "upload-too-large", too_large)
            parser.write(chunk)
        parser.finalize()
    except Problem:
        raise
    except Exception as exc:  # noqa: BLE001 - python-multipart's errors are all bad input
        raise Problem(422, "bad-form", f"malformed multipart body ({exc})") from None
    finally:
        collector.close()
    if not collector.ended:
        raise Problem(422, "bad-form", "the multipart body ended early")
    return collector.form
