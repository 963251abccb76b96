"""`ledex-train`: the trainer's stages, each a resumable command over JSONL files.

collect -> sft -> rl -> eval -> export (docs/DESIGN.md §6). Each stage is configured like TRL's
example scripts: a config dataclass, flags or a YAML file (`--config FILE`). Each stage lives in
its own module, `trainer/<stage>.py`, with a `main(argv) -> int`; this file only dispatches, so
`ledex-train --help` stays fast (no torch import).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

STAGES = {
    "collect": "sample wrong solutions, get explanations and refinements, verify them by execution",
    "collect_projects": "inject bugs into pytest projects and collect verified repairs in the editor's prompt",
    "sft": "supervised fine-tuning on verified trajectories (TRL SFTTrainer, LoRA by default)",
    "rl": "reinforcement learning with the LeDex rewards (TRL GRPO)",
    "eval": "pass@k before and after refinement, success-refinement rate, rounds",
    "compare": "two eval runs on the same wrong samples: success-refinement rates, McNemar's test",
    "export": "merged model or LoRA adapter for vLLM, GGUF adapter for the embedded backend",
}


# Stages that run model-written code (verification, rewards): bubblewrap or an explicit opt-in.
RUNS_GENERATED_CODE = frozenset({"collect", "collect_projects", "rl", "eval"})


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help") or args[0] not in STAGES:
        parser = argparse.ArgumentParser(
            prog="ledex-train",
            description=__doc__.splitlines()[0],
            epilog="`ledex-train STAGE --help` shows a stage's options.",
        )
        commands = parser.add_subparsers(title="stages", dest="stage", metavar="STAGE")
        for name, summary in STAGES.items():
            commands.add_parser(name, help=summary, add_help=False)
        if not args:
            parser.print_help()
            return 2
        parser.parse_args(args[:1])  # prints help, or a usage error for an unknown stage
        return 0
    if args[0] in RUNS_GENERATED_CODE and not {"-h", "--help"} & set(args[1:]):
        from ledex.sandbox.isolation import SandboxUnavailable, require_isolation

        try:  # fail closed: the rlimits-only mode must be the user's choice
            require_isolation(f"ledex-train {args[0]}")
        except SandboxUnavailable as error:
            print(f"ledex-train {args[0]}: error: {error}", file=sys.stderr)
            return 1
    try:
        stage = importlib.import_module(f"trainer.{args[0]}")
    except ModuleNotFoundError as error:
        if error.name != f"trainer.{args[0]}":
            raise
        print(f"ledex-train: error: the '{args[0]}' stage is not implemented yet", file=sys.stderr)
        return 1
    return int(stage.main(args[1:]) or 0)


def run_stage(stage: str, argv: Sequence[str] | None, body: Callable[[list[str]], object]) -> int:
    """Run a stage's `body(args)`: a `LedexError` is one line and exit 1; `--debug` (ledex's flag,
    taken out before TRL sees the arguments: TrainingArguments has its own `--debug`) shows the
    traceback instead."""
    from ledex.errors import LedexError

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [arg for arg in args if arg != "--debug"]
    try:
        body(args)
    except LedexError as error:
        if debug:
            raise
        print(f"ledex-train {stage}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
