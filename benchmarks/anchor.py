"""The naive anchor: what a user does without ledex's loop, measured the same way as the loop.

One plain chat prompt, pytest's report of the failing test and the project's source files pasted
in, one greedy reply, its code pasted back (by symbol, into whichever file defines it) and the
tests run once. No located function, no outline, no feedback turn, no second candidate. The loop
has to beat this on the same cases, with the same model, for its machinery to be worth anything.

`benchmarks/repair.py --styles anchor` runs it beside the loop's styles.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

from ledex import dialogue
from ledex.models.base import Backend, Sampling
from ledex.project_repair import CHARS_PER_TOKEN, ProjectTask, ProjectVerifier, is_test_file
from ledex.repair import Candidate, RepairResult, RoundRecord

STYLE = "anchor"
_SKIPPED = {
    ".git",
    ".venv",
    "venv",
    "__pycache__",
    ".pytest_cache",
    "build",
    "dist",
    "node_modules",
}


def project_files(project: Path) -> dict[str, str]:
    """The project's Python files, relative path -> text, tests last."""
    found: dict[str, str] = {}
    for root, dirs, files in os.walk(project):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED and not d.startswith("."))
        for name in sorted(files):
            if name.endswith(".py"):
                path = Path(root) / name
                found[str(path.relative_to(project))] = path.read_text(
                    encoding="utf-8", errors="replace"
                )
    return dict(sorted(found.items(), key=lambda item: (is_test_file(item[0]), item[0])))


def anchor_prompt(task: ProjectTask, files: dict[str, str], budget_chars: int) -> str:
    """The pasted message: the failure as pytest printed it, then every file (those that do not
    fit the budget are left out, tests first)."""
    report = (task.test.longrepr or task.test.message or "").strip()
    head = (
        f"Running pytest on my project fails:\n\n```\n{task.node_id}\n{report}\n```\n\n"
        "Here are the project's files.\n"
    )
    tail = "\nFind the bug and give me the corrected code."
    parts, used = [], len(head) + len(tail)
    for relpath, text in files.items():
        block = f"\n{relpath}:\n```python\n{text.rstrip()}\n```\n"
        if used + len(block) > budget_chars:
            continue
        parts.append(block)
        used += len(block)
    return head + "".join(parts) + tail


def naive_anchor(
    task: ProjectTask, backend: Backend, *, max_tokens: int = 1024, seed: int | None = 0
) -> RepairResult:
    started = time.perf_counter()
    files = project_files(task.project)
    window = backend.info.context_window or 8192
    prompt = anchor_prompt(task, files, max(2000, (window - max_tokens) * CHARS_PER_TOKEN - 500))
    record = RoundRecord(1, "")
    begun = time.perf_counter()
    (completions,) = backend.generate(
        [[{"role": "user", "content": prompt}]],
        Sampling(n=1, temperature=0.0, max_tokens=max_tokens, seed=seed),
    )
    record.generation_seconds = time.perf_counter() - begun
    reply = completions[0].text
    parsed = dialogue.parse_reply(reply)
    candidate = Candidate(1, 0, reply)
    if isinstance(parsed, dialogue.ParseError):
        candidate.parse_error = parsed.message
    else:
        candidate.explanation, candidate.code = parsed.explanation, parsed.code
        sources = {path: text for path, text in files.items() if not is_test_file(path)}
        verifier = ProjectVerifier(replace(task, sources=sources))  # pasted back into any file
        begun = time.perf_counter()
        candidate.verdict = verifier.verify(parsed.code)
        candidate.diff = verifier.diff(parsed.code)
        record.verification_seconds = time.perf_counter() - begun
    record.candidates.append(candidate)
    result = RepairResult(
        target=task.node_id, rounds=[record], fix=candidate if candidate.verified else None
    )
    result.seconds = time.perf_counter() - started
    return result
