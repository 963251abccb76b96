"""Verified fixes kept on disk, so reopening the editor or running `ledex fix` again on the same
failure is instant: keyed by the failing test, the model, and the content of every file the fix
may change (a file edited since is another key). A cached fix is a candidate like any other: it is
verified again on the files as they are before it is offered; a stale or broken entry is a miss.

One small JSON file per entry under `<cache>/fixes/`, written atomically; nothing leaves the
machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ledex.project_repair import ProjectTask
from ledex.repair import Candidate

_VERSION = 1


@dataclass(frozen=True)
class Entry:
    code: str
    explanation: str | None
    partial: bool  # fixed the test but not all of its group


class FixCache:
    def __init__(self, directory: Path, model: str) -> None:
        self.directory = directory
        self.model = model

    @classmethod
    def default(cls, model: str) -> FixCache:
        """`$LEDEX_FIX_CACHE_DIR`, else `fixes/` in ledex's cache folder."""
        from ledex.weights import cache_dir

        explicit = os.environ.get("LEDEX_FIX_CACHE_DIR")
        return cls(Path(explicit) if explicit else cache_dir() / "fixes", model)

    def key(self, task: ProjectTask) -> str:
        """The test, its group, the model and the files' contents, hashed."""
        digest = hashlib.sha256()
        parts = [f"v{_VERSION}", self.model, task.node_id, *sorted(task.also_failing)]
        for relpath, text in sorted(task.sources.items()):
            parts += [relpath, hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()]
        digest.update("\0".join(parts).encode("utf-8", "surrogatepass"))
        return digest.hexdigest()

    def get(self, task: ProjectTask) -> Entry | None:
        path = self.directory / f"{self.key(task)}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return Entry(
                str(data["code"]), data.get("explanation"), bool(data.get("partial", False))
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, task: ProjectTask, candidate: Candidate, *, partial: bool = False) -> None:
        """Keep a verified (or partial) fix; a cache that cannot be written is no error."""
        if not candidate.code:
            return
        data = {"code": candidate.code, "explanation": candidate.explanation, "partial": partial,
                "test": task.node_id, "model": self.model}  # fmt: skip
        with contextlib.suppress(OSError):
            self.directory.mkdir(parents=True, exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
            try:
                with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                    json.dump(data, handle)
                os.replace(temporary, self.directory / f"{self.key(task)}.json")
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
