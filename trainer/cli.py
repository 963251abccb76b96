"""`ledex-train`: the trainer's stages, each a resumable command over JSONL files.

collect -> sft -> rl -> eval -> export (DESIGN.md §6). Each stage is configured like TRL's example
scripts: a config dataclass, flags or a YAML file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

STAGES = {
    "collect": "sample wrong solutions, get explanations and refinements, verify them by execution",
    "sft": "supervised fine-tuning on verified trajectories (TRL SFTTrainer, LoRA by default)",
    "rl": "reinforcement learning with the LeDex rewards (TRL GRPO/RLOO)",
    "eval": "pass@k before and after refinement, success-refinement rate, rounds",
    "export": "merged model or LoRA adapter for vLLM, GGUF adapter for the embedded backend",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ledex-train", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(title="stages", dest="stage", metavar="STAGE")
    for name, summary in STAGES.items():
        commands.add_parser(name, help=summary)
    args = parser.parse_args(argv)
    if args.stage is None:
        parser.print_help()
        return 2
    print(f"ledex-train: error: the '{args.stage}' stage is not implemented yet", file=sys.stderr)
    return 1
