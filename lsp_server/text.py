"""Paths, URIs, positions and edits: from ledex's 1-based lines to LSP ranges in the negotiated
position encoding (UTF-16 unless the client chose UTF-8 or UTF-32)."""

from __future__ import annotations

import os
from pathlib import Path

from lsprotocol import types
from pygls.uris import from_fs_path, to_fs_path

from ledex import source_text


def uri_of(path: str | os.PathLike[str]) -> str:
    """The URI of a local file, in the one spelling ledex uses (pygls', percent-encoded)."""
    return from_fs_path(os.path.abspath(os.fspath(path))) or Path(path).absolute().as_uri()


def path_of(uri: str) -> Path | None:
    """The local file a `file:` URI names (None for other schemes)."""
    if not isinstance(uri, str) or not uri.startswith("file:"):
        return None
    path = to_fs_path(uri)
    return Path(path) if path else None


def canonical_uri(uri: str) -> str:
    """One spelling per file (`file:///a%20b/x.py` and `file:///a b/x.py` are the same document):
    how documents are compared. Other schemes are compared as they are."""
    path = path_of(uri)
    return uri_of(path) if path is not None else uri


def read(path: str | os.PathLike[str], *, raw: bool = False) -> str | None:
    """A file's text as ledex reads source (its declared encoding, LF line endings), or with
    `raw` its line endings as stored (what an editor buffer holds)."""
    return source_text.read_stored(path) if raw else source_text.read_text(path)


def units(text: str, encoding: str) -> int:
    """The length of `text` in the client's position units."""
    if encoding == types.PositionEncodingKind.Utf8:
        return len(text.encode("utf-8"))
    if encoding == types.PositionEncodingKind.Utf32:
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def line_range(text: str | None, line: int, encoding: str) -> types.Range:
    """Line `line` (1-based) of `text`, from its first non-blank character to its end."""
    index = max(0, line - 1)
    lines = (text or "").splitlines()
    if index >= len(lines):
        return types.Range(types.Position(index, 0), types.Position(index, 0))
    content = lines[index]
    indent = content[: len(content) - len(content.lstrip())]
    start = units(indent, encoding) if content.strip() else 0
    return types.Range(
        types.Position(index, start), types.Position(index, units(content.rstrip(), encoding))
    )


def lines_range(start_line: int, end_line: int) -> types.Range:
    """Whole lines start_line..end_line (1-based, inclusive), for hover lookups."""
    return types.Range(types.Position(start_line - 1, 0), types.Position(end_line, 0))


def contains(range_: types.Range, position: types.Position) -> bool:
    after_start = (position.line, position.character) >= (range_.start.line, range_.start.character)
    before_end = (position.line, position.character) <= (range_.end.line, range_.end.character)
    return after_start and before_end


def workspace_edit(
    changes: dict[str, tuple[int | None, list[types.TextEdit]]], document_changes: bool
) -> types.WorkspaceEdit:
    """{uri: (version the edits were computed for, edits)} as a WorkspaceEdit: versioned
    `documentChanges` where the client supports them (it then refuses a stale edit itself; an
    open document always carries its version), else plain `changes`."""
    if document_changes:
        return types.WorkspaceEdit(
            document_changes=[
                types.TextDocumentEdit(
                    text_document=types.OptionalVersionedTextDocumentIdentifier(
                        uri=uri, version=version
                    ),
                    edits=list(edits),
                )
                for uri, (version, edits) in changes.items()
            ]
        )
    return types.WorkspaceEdit(changes={uri: list(edits) for uri, (_, edits) in changes.items()})


def apply_text_edits(text: str, edits: list[types.TextEdit]) -> str:
    """Apply LSP edits (UTF-16 positions) to a text, as a client does; used by tests and checks."""
    lines = text.splitlines(keepends=True)

    def offset(position: types.Position) -> int:
        before = sum(len(line) for line in lines[: position.line])
        if position.line >= len(lines):
            return before
        line = lines[position.line]
        consumed, chars = 0, 0
        for char in line:
            if consumed >= position.character:
                break
            consumed += len(char.encode("utf-16-le")) // 2
            chars += 1
        return before + chars

    spans = sorted(
        ((offset(e.range.start), offset(e.range.end), e.new_text) for e in edits), reverse=True
    )
    for start, end, new in spans:
        text = text[:start] + new + text[end:]
    return text


def diff_edits(old: str, new: str, encoding: str) -> list[types.TextEdit]:
    """The smallest whole-line edits turning `old` into `new` (for a fix composed of several)."""
    import difflib

    old_lines, new_lines = old.splitlines(keepends=True), new.splitlines(keepends=True)

    def position(line: int) -> types.Position:
        if line < len(old_lines) or not old_lines or old_lines[-1].endswith(("\n", "\r")):
            return types.Position(line, 0)
        return types.Position(
            len(old_lines) - 1, units(old_lines[-1], encoding)
        )  # end of a last line without newline

    edits = []
    matcher = difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        start = types.Position(i1, 0) if i1 < len(old_lines) else position(i1)
        text = "".join(new_lines[j1:j2])
        edits.append(types.TextEdit(range=types.Range(start, position(i2)), new_text=text))
    return edits
