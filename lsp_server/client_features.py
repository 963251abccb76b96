"""What the client can do, read once from its capabilities at `initialize` (the features ask this,
never the raw capabilities)."""

from __future__ import annotations

from dataclasses import dataclass

from lsprotocol import types


@dataclass(frozen=True)
class ClientFeatures:
    apply_edit: bool = False  # workspace/applyEdit: the command can deliver a fix
    document_changes: bool = False  # versioned edits (the client refuses a stale one itself)
    work_done_progress: bool = False  # window/workDoneProgress: progress bars
    resolve_edit: bool = False  # codeAction/resolve fills in `edit` lazily
    markdown_hover: bool = True
    configuration: bool = False  # workspace/configuration (pulled settings)
    position_encoding: str = types.PositionEncodingKind.Utf16.value

    @classmethod
    def of(cls, caps: types.ClientCapabilities, encoding: str | None = None) -> ClientFeatures:
        workspace = caps.workspace
        document = caps.text_document
        window = caps.window
        action = document.code_action if document else None
        resolve = action.resolve_support if action else None
        formats = document.hover.content_format if document and document.hover else None
        return cls(
            apply_edit=bool(workspace and workspace.apply_edit),
            document_changes=bool(
                workspace and workspace.workspace_edit and workspace.workspace_edit.document_changes
            ),
            work_done_progress=bool(window and window.work_done_progress),
            resolve_edit=bool(
                resolve
                and "edit" in resolve.properties
                and action
                and action.data_support is not False
            ),
            markdown_hover=not formats or types.MarkupKind.Markdown in formats,
            configuration=bool(workspace and workspace.configuration),
            position_encoding=str(encoding or types.PositionEncodingKind.Utf16.value),
        )
