"""A source file's text as ledex works on it (str, `\\n` line endings) and back to the bytes the
user had: the same encoding (a PEP 263 coding cookie, a UTF-8 BOM) and line endings.

Repairs read, patch and compare files as `\\n`-terminated text (Python itself reads them so);
whatever is written to the user's disk or sent to the user's editor goes through `render`, so a
CRLF file stays CRLF. Writes are atomic and all-or-nothing for the files of one fix.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import tempfile
import tokenize
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SourceFormat:
    """How a file's text is stored: its encoding (as Python reads it: cookie, BOM, else UTF-8) and
    its line ending (the first one in the file; `\\n` for a file with none)."""

    encoding: str = "utf-8"
    newline: str = "\n"
    bom: bool = False

    def render(self, text: str) -> bytes:
        """`\\n`-terminated text as this file's bytes."""
        stored = text.replace("\n", self.newline) if self.newline != "\n" else text
        data = stored.encode(self.encoding)
        return codecs.BOM_UTF8 + data if self.bom else data

    def to_editor(self, text: str) -> str:
        """`\\n`-terminated text with this file's line endings (an editor buffer holds those)."""
        return text.replace("\n", self.newline) if self.newline != "\n" else text


def normalise(text: str) -> str:
    """Any line endings as `\\n` (what `open()` in text mode reads)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def newline_of(text: str) -> str:
    for index, char in enumerate(text):
        if char == "\r":
            return "\r\n" if text[index + 1 : index + 2] == "\n" else "\r"
        if char == "\n":
            return "\n"
    return "\n"


def decode_stored(data: bytes) -> tuple[str, SourceFormat]:
    """A file's bytes as text with its line endings as stored, and its format; raises
    UnicodeDecodeError or SyntaxError (a bad coding cookie) for a file Python could not read."""
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    bom = encoding == "utf-8-sig"
    if bom:
        data, encoding = data[len(codecs.BOM_UTF8) :], "utf-8"
    raw = data.decode(encoding)
    return raw, SourceFormat(encoding, newline_of(raw), bom)


def decode(data: bytes) -> tuple[str, SourceFormat]:
    """A file's bytes as LF text and its format (see `decode_stored`)."""
    raw, fmt = decode_stored(data)
    return normalise(raw), fmt


_UNREADABLE = (OSError, UnicodeDecodeError, SyntaxError, LookupError)


def read(path: str | os.PathLike[str]) -> tuple[str, SourceFormat] | None:
    """A file's LF text and format, or None if it cannot be read as Python source."""
    try:
        return decode(Path(path).read_bytes())
    except _UNREADABLE:
        return None


def read_stored(path: str | os.PathLike[str]) -> str | None:
    """A file's text with its line endings as stored (what an editor's buffer holds), or None."""
    try:
        return decode_stored(Path(path).read_bytes())[0]
    except _UNREADABLE:
        return None


def read_text(path: str | os.PathLike[str]) -> str | None:
    found = read(path)
    return found[0] if found is not None else None


class WriteRefused(Exception):
    """Nothing was written: a file changed since the fix was computed, or cannot be written."""


def write_all(project: Path, changes: Mapping[str, tuple[str, str]]) -> list[str]:
    """Write {relpath: (text the fix was computed from, new text)} all or nothing.

    Every file is checked first (it must still read as the fix's starting text), then each new
    text goes to a temporary file beside its target (same mode), and only when all are written
    are they renamed over the targets; a rename that fails puts the files already replaced back.
    Returns the relpaths written; raises WriteRefused (nothing changed) otherwise.
    """
    plans: list[tuple[Path, bytes, bytes]] = []  # (path, old bytes, new bytes)
    for relpath, (expected, new) in sorted(changes.items()):
        path = project / relpath
        try:
            old = path.read_bytes()
            current, fmt = decode(old)
        except _UNREADABLE as error:
            raise WriteRefused(
                f"{relpath} cannot be read ({error}); nothing was written"
            ) from error
        if current != expected:
            raise WriteRefused(f"{relpath} changed since the tests ran; nothing was written")
        try:
            plans.append((path, old, fmt.render(new)))
        except UnicodeEncodeError as error:
            raise WriteRefused(
                f"the fix of {relpath} has characters its encoding ({fmt.encoding}) cannot hold; "
                "nothing was written"
            ) from error
    staged: list[tuple[Path, str]] = []
    try:
        for path, _, data in plans:
            staged.append((path, _stage(path, data)))
    except OSError as error:
        for _, temporary in staged:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        raise WriteRefused(f"cannot write {path.name} ({error}); nothing was written") from error
    done: list[int] = []
    try:
        for index, (path, temporary) in enumerate(staged):
            os.replace(temporary, path)
            done.append(index)
    except OSError as error:
        for index in done:  # put back what was replaced: all or nothing
            path, old, _ = plans[index]
            with contextlib.suppress(OSError):
                os.replace(_stage(path, old), path)
        for _, temporary in staged[len(done) :]:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        raise WriteRefused(
            f"cannot replace {staged[len(done)][0].name} ({error}); nothing was written"
        ) from error
    return [relpath for relpath in sorted(changes)]


def _stage(path: Path, data: bytes) -> str:
    """`data` in a temporary file beside `path`, with `path`'s permissions, flushed to disk."""
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".ledex", dir=path.parent
    )
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(OSError):
            os.chmod(temporary, path.stat().st_mode & 0o7777)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return temporary
