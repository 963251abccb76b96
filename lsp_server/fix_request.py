"""The wire format of a fix request: what a code action's `data` or the `ledex.explainAndFix`
command's argument holds, and what the command answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from lsp_server.session import RepairRecord

COMMAND = "ledex.explainAndFix"


@dataclass(frozen=True)
class FixRequest:
    """What a code action or command asks for: fix these tests, seen in `uri` at `version`."""

    uri: str
    version: int | None
    node_ids: tuple[str, ...]
    unverified: bool = False  # apply the best attempt although not verified (showUnverified)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"uri": self.uri, "version": self.version}
        if len(self.node_ids) == 1:
            data["nodeId"] = self.node_ids[0]
        else:
            data["nodeIds"] = list(self.node_ids)
        if self.unverified:
            data["unverified"] = True
        return data

    @classmethod
    def from_json(cls, raw: object) -> FixRequest:
        """Raises JsonRpcInvalidParams for anything malformed."""
        if not isinstance(raw, dict):
            raise JsonRpcInvalidParams(f"expected {{uri, version, nodeId}}, got {raw!r}"[:300])
        uri, version = raw.get("uri"), raw.get("version")
        nodes = raw.get("nodeIds", [raw["nodeId"]] if "nodeId" in raw else None)
        if not isinstance(uri, str) or not uri:
            raise JsonRpcInvalidParams("`uri` must be a document URI")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
            raise JsonRpcInvalidParams("`version` must be an integer or null")
        if (
            not isinstance(nodes, list)
            or not nodes
            or not all(isinstance(n, str) and n for n in nodes)
        ):
            raise JsonRpcInvalidParams(
                "`nodeId` (a test node id) or `nodeIds` (a list of them) is required"
            )
        return cls(uri, version, tuple(dict.fromkeys(nodes)), bool(raw.get("unverified", False)))


@dataclass
class FixOutcome:
    """A fix request's answer: the edit to offer (None with a message saying why not)."""

    edit: types.WorkspaceEdit | None = None
    label: str = ""
    message: str = ""
    verified: bool = False
    records: list[RepairRecord] = field(default_factory=list)
    partial: bool = False  # verified, but some failing tests of the same code still fail

    def to_json(self, applied: bool) -> dict[str, Any]:
        return {
            "applied": applied,
            "verified": self.verified,
            "partial": self.partial,
            "message": self.message,
            "tests": [r.node_id for r in self.records],
        }


def one_line(text: str, limit: int = 90) -> str:
    """The first sentence of an explanation, for a code action's title."""
    flat = " ".join((text or "").split())
    for end in (". ", "; "):
        if end in flat[: limit + 1]:
            flat = flat[: flat.index(end) + 1]
            break
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
