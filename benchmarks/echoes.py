"""Why repair candidates come back unchanged: explanations that give a line as its own fix.

A small model that explains "`x` should be `y`" before it writes the code sometimes writes the
wrong text twice ("`x` should be `x`") and then the code unchanged, which the loop rejects. This
reads the per-test results of `benchmarks/repair.py` (its `--out` JSONL) and prints, per model and
style, how many candidates' explanations do that (an *echo*: some "`A` should be `B`" with A == B)
and how many of those and of the others came back unchanged (the fix identical to the code, copies
of such a candidate included), with the ratio of the two rates, measured in the same file.
Since the loop draws unchanged replies again (session 12, at most n a round), results written
after that count few unchanged candidates by construction: compare only files of the same loop.

    python benchmarks/echoes.py RESULTS.jsonl [RESULTS.jsonl ...]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

if __name__ == "__main__":  # run as a script: make `ledex` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.repair import read_records
from ledex import dialogue, patching


def echoes(explanation: str | None, reply: str | None = None) -> bool:
    """Whether the explanation gives some text as its own replacement; for a reply that did not
    parse (no explanation read), its text before the first code fence."""
    if explanation is None and reply:
        explanation = dialogue.before_code(reply)[0]
    return dialogue.echoes_a_change(explanation or "")


def unchanged(candidate: dict) -> bool:
    """Whether the candidate's code was rejected as the current code unchanged."""
    return candidate.get("status") == "rejected" and patching.UNCHANGED in str(candidate.get("feedback"))


@dataclass
class Counts:
    candidates: int = 0
    echoed: int = 0
    echoed_unchanged: int = 0
    other_unchanged: int = 0

    def add(self, candidate: dict) -> None:
        self.candidates += 1
        if echoes(candidate.get("explanation"), candidate.get("reply")):
            self.echoed += 1
            self.echoed_unchanged += unchanged(candidate)
        else:
            self.other_unchanged += unchanged(candidate)

    def row(self) -> str:
        others = self.candidates - self.echoed
        rate_echoed = self.echoed_unchanged / self.echoed if self.echoed else 0.0
        rate_other = self.other_unchanged / others if others else 0.0
        ratio = f"{rate_echoed / rate_other:.1f}x" if self.echoed and rate_other else "-"
        return (
            f"{self.candidates:>10} {self.echoed:>7} ({self.echoed / max(1, self.candidates):4.0%})"
            f" {self.echoed_unchanged:>4}/{self.echoed:<4} ({rate_echoed:4.0%})"
            f" {self.other_unchanged:>4}/{others:<4} ({rate_other:4.0%}) {ratio:>7}"
        )


def count(rows: Iterable[dict]) -> dict[tuple[str, str], Counts]:
    """Counts per (model, style) over every candidate of every result row."""
    table: dict[tuple[str, str], Counts] = {}
    for row in rows:
        counts = table.setdefault((str(row.get("model")), str(row.get("style"))), Counts())
        for candidate in row.get("candidates") or []:
            counts.add(candidate)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="benchmarks/repair.py --out files")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.results if not p.is_file()]
    if missing:
        parser.error(f"no such results file: {', '.join(missing)}")
    table = count(row for path in args.results for row in read_records(path))
    print(f"{'candidates':>10} {'echoed':>14} {'unchanged if echoed':>21} {'unchanged otherwise':>21} {'ratio':>7}  model / style")
    for (model, style), counts in sorted(table.items()):
        print(f"{counts.row()}  {model} / {style}")
    print("echoed: the explanation gives some `text` as its own fix (`x` should be `x`); unchanged: "
          "the fix was the current code (copies included)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
