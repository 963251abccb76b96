"""Verified fixes kept on disk, so reopening the editor or running `ledex fix` again on the same
failure is instant: keyed by the failing test, the model's weights, and the content of every file
the fix may change (a file edited since is another key). A cached fix is a candidate like any
other: it is verified again on the files as they are before it is offered; a stale or broken entry
is a miss.

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

_VERSION = 2  # 2: the key names the weights, not only the spec string (see `model_identity`)


@dataclass(frozen=True)
class Entry:
    code: str
    explanation: str | None
    partial: bool  # fixed the test but not all of its group


def model_identity(model: str) -> str:
    """The spec string and what it loads, as far as it can be told without reading weights.

    A spec names a file, not its content: a new ledex release ships another `embedded:0.5b-ledex`
    under the same name, and a user retrains `embedded:0.5b+my.gguf` in place. A fix cached from
    the old weights would still verify, but its explanation would be the old model's, offered as
    the new one's. So the key adds the pinned SHA-256 of an embedded model or shipped adapter, and
    the size and modification time of a file or folder of the user's own (hashing it on every
    lookup would cost more than the cache saves). A remote model is its spec string: nothing more
    is known.
    """
    from ledex.errors import LedexError
    from ledex.models.spec import is_gguf_path, parse_spec
    from ledex.weights import resolve, shipped_adapter

    parts = [model]
    try:
        spec = parse_spec(model)
        if spec.kind == "embedded":
            if adapter := shipped_adapter(spec):
                parts += [adapter.sha256, adapter.base_sha256]
            elif not is_gguf_path(spec.target):
                parts.append(resolve(model).sha256)
        files = [spec.adapter] if spec.adapter else []
        if spec.kind in ("hf", "vllm") or (spec.kind == "embedded" and is_gguf_path(spec.target)):
            files.append(spec.target)
        for path in files:
            parts += _file_stamps(path)
    except LedexError:
        pass  # a spec that does not parse never reaches a model; its fixes are keyed by the text
    return "\0".join(parts)


def _file_stamps(path: str) -> list[str]:
    """Size and modification time of a file, or of the files directly in a folder (a
    transformers model or peft adapter folder: its weights are rewritten in place, the folder's
    own stamp does not change); nothing for what cannot be read (a hub id, a missing file)."""
    try:
        target = Path(path).expanduser()
        members = sorted(target.iterdir()) if target.is_dir() else [target]
        stamps = []
        for member in members:
            if member.is_file():
                stat = member.stat()
                stamps.append(f"{member}:{stat.st_size}:{stat.st_mtime_ns}")
        return stamps
    except (OSError, ValueError, RuntimeError):  # ~nosuchuser, a NUL byte, unreadable
        return []


class FixCache:
    def __init__(self, directory: Path, model: str) -> None:
        self.directory = directory
        self.model = model
        self._identity = model_identity(model)

    @classmethod
    def default(cls, model: str) -> FixCache:
        """`$LEDEX_FIX_CACHE_DIR`, else `fixes/` in ledex's cache folder."""
        from ledex.weights import cache_dir

        explicit = os.environ.get("LEDEX_FIX_CACHE_DIR")
        return cls(Path(explicit) if explicit else cache_dir() / "fixes", model)

    def key(self, task: ProjectTask) -> str:
        """The test, its group, the model's weights and the files' contents, hashed."""
        digest = hashlib.sha256()
        parts = [f"v{_VERSION}", self._identity, task.node_id, *sorted(task.also_failing)]
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

    def drop(self, task: ProjectTask) -> None:
        """Forget the fix kept for this task (one that verified alone but broke another test)."""
        with contextlib.suppress(OSError):
            (self.directory / f"{self.key(task)}.json").unlink(missing_ok=True)

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
