"""Trajectories -> conversational SFT examples, in exactly the dialogue the server will send.

Each verified `Trajectory` becomes one TRL *prompt-completion* example in conversational form:

    prompt     = [user: task, assistant: wrong code, user: feedback + instruction]
    completion = [assistant: explanation + fenced refinement]   (`dialogue.format_reply`)

Both come from `ledex.dialogue.build_training_example`, the same function the server's prompts come
from (`build_conversation`), so a model is trained on the prompt it is served with.

Why prompt-completion and not `assistant_only_loss`: turn 2 (the wrong code) is an assistant turn
too, and an assistant-only mask would teach the model to write the bug. With a prompt and a
completion, SFTTrainer's `completion_only_loss` puts the loss on the final answer only.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ledex import dialogue
from ledex.errors import LedexError
from trainer.prompts import mentions_hint
from trainer.records import TRAJECTORIES_FILE, Trajectory, read_records


class DataError(LedexError):
    """Training data that cannot be used: missing, empty, or with nothing verified in it."""


def trajectories_path(path: str | os.PathLike[str]) -> Path:
    """A trajectories file, or a `collect` output folder holding `trajectories.jsonl` (or a
    committed snapshot folder holding `trajectories.jsonl.gz`)."""
    path = Path(path).expanduser()
    if path.is_dir():
        packed = path / f"{TRAJECTORIES_FILE}.gz"
        path = packed if packed.is_file() and not (path / TRAJECTORIES_FILE).is_file() else path / TRAJECTORIES_FILE
    if not path.is_file():
        raise DataError(
            f"no training data at {path}: pass the trajectories.jsonl that `ledex-train collect` "
            "wrote, or its output folder"
        )
    return path


def to_example(record: Trajectory, *, system: str | None = None) -> dict[str, Any]:
    """One prompt-completion example (conversational) for a trajectory."""
    if record.style not in dialogue.STYLES:
        raise DataError(
            f"trajectory {record.key!r} has an unknown style {record.style!r}; "
            f"expected one of {', '.join(dialogue.STYLES)}"
        )
    style = dialogue.check_style(record.style)
    reply = dialogue.format_reply(record.explanation, record.refinement, style)
    messages = dialogue.build_training_example(
        record.task, record.wrong_code, record.feedback, reply, style=style, system=system
    )
    return {"prompt": messages[:-1], "completion": messages[-1:], "key": record.key}


def select(
    records: Iterable[Trajectory], *, styles: Sequence[str] | None = None
) -> tuple[list[Trajectory], dict[str, int]]:
    """The trainable records (verified, with code, in the chosen styles, one per key) and counts."""
    counts = {"records": 0, "verified": 0, "used": 0}
    seen: set[str] = set()
    kept: list[Trajectory] = []
    for record in records:
        counts["records"] += 1
        if not record.verified or not record.refinement.strip():
            continue
        counts["verified"] += 1
        if styles and record.style not in styles:
            continue
        if record.style == "explain+refine" and not record.explanation.strip():
            continue  # nothing to teach for the explanation part
        if record.hint and mentions_hint(record.explanation):
            continue  # it explains the hint, which the student never sees
        if record.key in seen:
            continue
        seen.add(record.key)
        kept.append(record)
    counts["used"] = len(kept)
    return kept, counts


def load_examples(
    path: str | os.PathLike[str],
    *,
    styles: Sequence[str] | None = None,
    system: str | None = None,
    max_examples: int | None = None,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Read a trajectories file and return its SFT examples, or a `DataError` saying why there are none."""
    source = trajectories_path(path)
    records, counts = select(read_records(source, Trajectory), styles=styles)
    if counts["records"] == 0:
        raise DataError(f"{source} holds no trajectories; run `ledex-train collect` first")
    if not records:
        wanted = f" in style {', '.join(styles)}" if styles else ""
        raise DataError(
            f"{source} has {counts['records']} trajectories but none verified{wanted} (all tests "
            "passing, with an explanation and code): nothing to fine-tune on"
        )
    if max_examples is not None:
        records = records[:max_examples]
        counts["used"] = len(records)
    return [to_example(record, system=system) for record in records], counts


def load_mixture(
    paths: Sequence[str | os.PathLike[str]],
    *,
    styles: Sequence[str] | None = None,
    system: str | None = None,
    max_examples: int | Sequence[int] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The examples of several data folders, in order (the trainer shuffles), at most
    `max_examples` from each (one number for all, or one per folder), so that one source (the
    editor's project prompts, LeDex's problem prompts) cannot crowd out another; the counts are
    summed. A record met twice (a run folder and its committed snapshot) is trained once."""
    if max_examples is None or isinstance(max_examples, int):
        caps: Sequence[int | None] = [max_examples] * len(paths)
    elif len(max_examples) == 1:
        caps = list(max_examples) * len(paths)
    elif len(max_examples) == len(paths):
        caps = list(max_examples)
    else:
        raise DataError(f"{len(max_examples)} max_examples for {len(paths)} data folders")
    examples: list[dict[str, Any]] = []
    counts = {"records": 0, "verified": 0, "used": 0}
    seen: set[str] = set()
    for path, cap in zip(paths, caps, strict=True):
        some, theirs = load_examples(path, styles=styles, system=system, max_examples=cap)
        examples += [example for example in some if example["key"] not in seen]
        seen.update(example["key"] for example in some)
        for name in ("records", "verified"):
            counts[name] += theirs[name]
    counts["used"] = len(examples)
    return examples, counts
