"""`ledex-train compare`: two eval runs on the same wrong samples, compared pairwise (LeDex §4).

    ledex-train eval --model embedded:0.5b --output_dir runs/eval-base
    ledex-train eval --model embedded:0.5b+runs/export/adapter.gguf --samples_from runs/eval-base \\
        --output_dir runs/eval-trained
    ledex-train compare --runs runs/eval-base runs/eval-trained

Both runs must hold the very same samples (`--samples_from`): then every wrong sample was refined
by both models, and the comparison is paired. Per prompt style it reports, for each run, the
success-refinement rate (wrong samples whose refinement passed within the run's rounds) with a
95% Wilson interval and pass@1 before and after; between them, the ratio of the rates, the
discordant pairs (fixed by one model only) and McNemar's exact test on them (a two-sided binomial
test, `scipy.stats.binomtest`): the chance of a split at least this uneven if both models were
equally good. Written to `compare.json` and `compare.md` (in --output_dir, default the second run).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledex.errors import LedexError
from trainer.eval import REFINEMENTS_FILE, RUN_FILE, SAMPLES_FILE
from trainer.records import read_jsonl


@dataclass
class CompareConfig:
    runs: list[str] = field(
        default_factory=list,
        metadata={"help": "two eval output folders: the baseline, then the model compared with it"},
    )
    styles: list[str] | None = field(
        default=None, metadata={"help": "prompt styles to compare (default: those both runs have)"}
    )
    output_dir: str | None = field(
        default=None,
        metadata={"help": "where compare.json/.md go (default: the second run's folder)"},
    )


@dataclass(frozen=True)
class Run:
    path: Path
    settings: dict[str, Any]
    samples: dict[str, dict[str, Any]]  # key -> sample record
    solved: dict[str, set[str]]  # style -> keys of wrong samples refined within the run's rounds
    styles: frozenset[str]  # the styles it refined in

    @property
    def wrong(self) -> dict[str, str]:
        return {key: s.get("code", "") for key, s in self.samples.items() if not _passed(s)}


def load_run(path: str | Path) -> Run:
    path = Path(path)
    try:
        settings = json.loads((path / RUN_FILE).read_text())
    except (OSError, ValueError) as error:
        raise LedexError(f"{path} is not an eval output folder ({error})") from None
    samples = {str(d["key"]): d for d in read_jsonl(path / SAMPLES_FILE)}
    solved: dict[str, set[str]] = {}
    styles: set[str] = set()
    for refinement in read_jsonl(path / REFINEMENTS_FILE):
        styles.add(str(refinement["style"]))
        if _passed(refinement):
            sample = f"{refinement['task_id']}/{refinement['index']}"
            solved.setdefault(str(refinement["style"]), set()).add(sample)
    return Run(path, settings, samples, solved, frozenset(styles))


def compare(base: Run, other: Run, styles: Sequence[str] | None = None) -> dict[str, Any]:
    """The paired comparison of `other` against `base`; a LedexError if they are not paired."""
    from scipy.stats import binomtest

    if base.samples.keys() != other.samples.keys() or base.wrong != other.wrong:
        raise LedexError(
            f"{other.path} does not hold the samples of {base.path}: run it with "
            f"--samples_from {base.path} (the comparison must be paired)"
        )
    wrong = sorted(base.wrong)
    if not wrong:
        raise LedexError(f"{base.path} has no wrong samples: nothing to refine, nothing to compare")
    chosen = list(styles) if styles else sorted(base.styles & other.styles)
    if not chosen:
        raise LedexError(f"{base.path} and {other.path} have no refinement style in common")
    result: dict[str, Any] = {
        "runs": [str(base.path), str(other.path)],
        "models": [base.settings.get("model"), other.settings.get("model")],
        "samples": len(base.samples),
        "wrong": len(wrong),
        "pass@1_before": round(1 - len(wrong) / len(base.samples), 4),
        "styles": {},
    }
    for style in chosen:
        fixed = [base.solved.get(style, set()), other.solved.get(style, set())]
        only_base = sum(1 for key in wrong if key in fixed[0] and key not in fixed[1])
        only_other = sum(1 for key in wrong if key in fixed[1] and key not in fixed[0])
        arms: list[dict[str, Any]] = []
        for run, solved in zip((base, other), fixed, strict=True):
            count = sum(1 for key in wrong if key in solved)
            interval = binomtest(count, len(wrong)).proportion_ci(0.95, method="wilson")
            arms.append(
                {
                    "model": run.settings.get("model"),
                    "refined": count,
                    "success_refinement_rate": round(count / len(wrong), 4),
                    "ci95": [round(interval.low, 4), round(interval.high, 4)],
                    "pass@1_after": round(
                        (len(base.samples) - len(wrong) + count) / len(base.samples), 4
                    ),
                }
            )
        discordant = only_base + only_other
        p_value = binomtest(only_other, discordant, 0.5).pvalue if discordant else 1.0
        rate = arms[0]["success_refinement_rate"]
        result["styles"][style] = {
            "arms": arms,
            "ratio": round(arms[1]["success_refinement_rate"] / rate, 3) if rate else None,
            "fixed_by_base_only": only_base,
            "fixed_by_other_only": only_other,
            "mcnemar_p": round(float(p_value), 6),
        }
    return result


def markdown(result: dict[str, Any]) -> str:
    base, other = result["models"]
    lines = [
        f"Paired on {result['samples']} samples, {result['wrong']} of them wrong "
        f"(pass@1 before: {100 * result['pass@1_before']:.1f}).",
        "",
        "| Style | Model | Refined | Success-refinement rate (95% CI) | Pass@1 after |",
        "|---|---|---:|---|---:|",
    ]
    for style, row in result["styles"].items():
        for arm in row["arms"]:
            low, high = arm["ci95"]
            lines.append(
                f"| {style} | {arm['model']} | {arm['refined']}/{result['wrong']} | "
                f"{100 * arm['success_refinement_rate']:.1f}% ({100 * low:.1f}–{100 * high:.1f}) | "
                f"{100 * arm['pass@1_after']:.1f} |"
            )
    lines += [
        "",
        "| Style | Ratio (second / first) | Fixed by the first only | by the second only | McNemar p |",
        "|---|---:|---:|---:|---:|",
    ]
    for style, row in result["styles"].items():
        ratio = "—" if row["ratio"] is None else f"{row['ratio']:.2f}×"
        lines.append(
            f"| {style} | {ratio} | {row['fixed_by_base_only']} | {row['fixed_by_other_only']} | "
            f"{row['mcnemar_p']:.4g} |"
        )
    lines += ["", f"First: {base}. Second: {other}."]
    return "\n".join(lines) + "\n"


def parse_config(argv: Sequence[str]) -> CompareConfig:
    from trl import TrlParser

    parser = TrlParser(
        (CompareConfig,), prog="ledex-train compare", description=(__doc__ or "").splitlines()[0]
    )
    (config,) = parser.parse_args_and_config(list(argv))
    return config


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(sys.argv[1:] if argv is None else argv)
    if len(config.runs) != 2:
        print("ledex-train compare: error: --runs takes two eval output folders", file=sys.stderr)
        return 2
    try:
        base, other = (load_run(path) for path in config.runs)
        result = compare(base, other, config.styles)
    except LedexError as error:
        print(f"ledex-train compare: error: {error}", file=sys.stderr)
        return 1
    out = Path(config.output_dir or config.runs[1])
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    text = markdown(result)
    (out / "compare.md").write_text(text, encoding="utf-8")
    print(text, end="")
    return 0


def _passed(record: dict[str, Any]) -> bool:
    passed = record.get("passed") or []
    return record.get("status") == "passed" and bool(passed) and all(passed)


if __name__ == "__main__":
    raise SystemExit(main())
