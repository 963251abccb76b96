"""`ledex-train rl`: reinforcement learning with LeDex's rewards (§2.3), on TRL's GRPOTrainer.

    ledex-train rl --data runs/collect --model runs/sft --output_dir runs/rl
    ledex-train rl --config rl.yaml          # the same options from a YAML file (flags win)
    accelerate launch --config_file trainer/accelerate/multi_gpu.yaml -m trainer.rl --data ...

Configured like TRL's example scripts: `RLScriptArguments` (data, model, rewards) and
`LedexGRPOConfig` (TRL's `GRPOConfig` with ledex's defaults), parsed by `trl.TrlParser` from flags
and/or `--config FILE.yaml`. TRL's GRPOTrainer does the work; LeDex used PPO, which TRL no longer
has (see `trainer/rewards.py` for what the switch to sequence-level rewards means).

- Prompts: one per wrong code of `ledex-train collect` that has at least one verified trajectory
  (and per dialogue style, `--styles`, default explain+refine), built by
  `ledex.dialogue.build_conversation` exactly as SFT and the server build them. The verified
  refinements and explanations of that wrong code are the references of the rewards; the problem's
  tests come from its data source (`--source`/`--tasks_path`, default: the trajectories' source).
- Rewards (`--rewards`, weights in `--reward_weights`, same order): `refinement` (CodeBLEU + unit
  tests, run in the sandbox), `explanation` (sentence-embedding similarity; `--embedding_model`),
  and optionally `outcome_explanation` (CTRL-style: how often refinements generated from the
  explanation pass; `--outcome_model policy` or any ledex model spec).
- Model: a base model (HF folder or hub id, `.gguf`, `embedded:0.5b`) gets a new LoRA adapter
  (`--full_finetune` trains all weights); an `ledex-train sft` output folder holding a LoRA adapter
  keeps training that adapter on its base model (the KL reference, with `--beta > 0`, is a frozen
  copy of the SFT adapter).
- Without a GPU the run goes to the CPU in float32 by itself.
- Resumes: when `output_dir` holds checkpoints, training continues from the last one
  (`--no_resume` starts over; `--resume_from_checkpoint DIR` picks one).

The output folder holds the adapter (or the full model), the tokenizer, and `ledex-run.json`
(the base model and what was trained), as `ledex-train sft` writes it, for `ledex-train export`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trl import GRPOConfig

from ledex.dialogue import STYLES, build_conversation, check_style
from ledex.errors import LedexError
from trainer.modeling import AdaptationArguments
from trainer.records import TRAJECTORIES_FILE, Trajectory, read_records
from trainer.rewards import REWARDS, encode_tests

DEFAULT_REWARDS = ["refinement", "explanation"]


class RLDataError(LedexError):
    """The RL data cannot be built (no trajectories, no verified ones, tasks not found)."""


@dataclass
class RLScriptArguments(AdaptationArguments):
    """What to train on, which rewards, and how to adapt the model."""

    data: str = field(
        default="",
        metadata={
            "help": "trajectories.jsonl written by `ledex-train collect`, or its output folder"
        },
    )
    model: str = field(
        default="embedded:0.5b",
        metadata={
            "help": "an `ledex-train sft` output folder (its LoRA adapter trains on), or a base "
            "model: an HF folder or hub id, a .gguf file, or an embedded model (embedded:0.5b)"
        },
    )
    source: str | None = field(
        default=None,
        metadata={"help": "data source of the problems' tests (default: the trajectories' source)"},
    )
    tasks_path: str | None = field(
        default=None,
        metadata={"help": "where that source's problems are (its loader's default if unset)"},
    )
    split: str | None = field(default=None, metadata={"help": "that source's split (default: all)"})
    styles: list[str] | None = field(
        default=None, metadata={"help": "dialogue styles of the prompts (default: explain+refine)"}
    )
    max_prompts: int | None = field(
        default=None, metadata={"help": "use at most this many prompts"}
    )
    max_prompt_tokens: int = field(
        default=2048, metadata={"help": "prompts longer than this (in tokens) are left out"}
    )
    rewards: list[str] = field(
        default_factory=lambda: list(DEFAULT_REWARDS),
        metadata={
            "help": f"reward functions, any of: {', '.join(REWARDS)} (weights: --reward_weights)"
        },
    )
    embedding_model: str = field(
        default="all-roberta-large-v1",
        metadata={
            "help": "sentence embeddings of the explanation reward (LeDex: all-roberta-large-v1, "
            "from the hub; all-MiniLM-L6-v2 is installed with ledex[train] and works offline)"
        },
    )
    max_references: int = field(
        default=8, metadata={"help": "verified refinements compared by CodeBLEU per prompt"}
    )
    test_timeout: float = field(
        default=5.0, metadata={"help": "seconds per program in the sandbox"}
    )
    sandbox_workers: int | None = field(
        default=None, metadata={"help": "parallel sandbox workers (default: CPU count)"}
    )
    outcome_model: str = field(
        default="policy",
        metadata={
            "help": "generator of the outcome_explanation reward: `policy` (the trained model) "
            "or a ledex model spec (embedded:0.5b, openai:URL#MODEL, hf:PATH)"
        },
    )
    outcome_samples: int = field(
        default=4, metadata={"help": "refinements generated per explanation"}
    )
    outcome_temperature: float = field(default=0.8, metadata={"help": "their sampling temperature"})
    outcome_max_tokens: int = field(default=512, metadata={"help": "their token budget"})


@dataclass
class LedexGRPOConfig(GRPOConfig):
    """TRL's GRPOConfig with ledex's defaults (a flag or the YAML file overrides each)."""

    output_dir: str | None = field(default="runs/rl", metadata={"help": "where the run is written"})
    learning_rate: float = field(
        default=1e-6, metadata={"help": "learning rate (1e-5 when LoRA and not given)"}
    )
    beta: float = field(
        default=0.04,
        metadata={
            "help": "KL coefficient to the starting model (LeDex's PPO kept one; 0 skips it)"
        },
    )
    num_generations: int | None = field(
        default=4, metadata={"help": "completions per prompt (the group)"}
    )
    max_completion_length: int | None = field(
        default=512, metadata={"help": "tokens per completion"}
    )
    per_device_train_batch_size: int = field(
        default=4, metadata={"help": "completions per device and step"}
    )
    gradient_accumulation_steps: int = field(default=4, metadata={"help": "accumulation"})
    temperature: float = field(
        default=0.8, metadata={"help": "sampling temperature of the rollouts"}
    )
    num_train_epochs: float = field(default=1.0, metadata={"help": "epochs over the prompts"})
    logging_steps: float = field(default=1, metadata={"help": "log every N steps"})
    save_steps: float = field(default=25, metadata={"help": "checkpoint every N steps"})
    save_total_limit: int | None = field(default=2, metadata={"help": "checkpoints kept"})
    report_to: None | str | list[str] = field(default="none", metadata={"help": "trackers"})
    seed: int = field(default=42, metadata={"help": "random seed"})

    def __post_init__(self) -> None:
        # Without a GPU, train on the CPU in float32 (TRL defaults to bf16 and would refuse); SFT
        # picks bf16 on a CPU with bf16 instructions, but RL's generation in bf16 is not measured.
        import torch

        if not torch.cuda.is_available() and not self.use_cpu:
            self.use_cpu = True
        if self.use_cpu and self.bf16 is None:
            self.bf16 = False
        super().__post_init__()


# --- parsing -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> tuple[RLScriptArguments, LedexGRPOConfig, set[str]]:
    from trl import TrlParser

    from trainer.sft import explicit_options

    args = list(argv)
    parser = TrlParser((RLScriptArguments, LedexGRPOConfig), prog="ledex-train rl")
    script_args, training_args = parser.parse_args_and_config(args)
    return script_args, training_args, explicit_options(args)


def finalize_config(
    script_args: RLScriptArguments, training_args: LedexGRPOConfig, explicit: AbstractSet[str]
) -> list[str]:
    """Fill in what depends on the machine and the options; check the rewards; return notes."""
    import torch

    notes: list[str] = []
    unknown = [name for name in script_args.rewards if name not in REWARDS]
    if unknown or not script_args.rewards:
        raise LedexError(f"unknown reward {unknown or '(none)'}: choose from {', '.join(REWARDS)}")
    weights = training_args.reward_weights
    if weights is not None and len(weights) != len(script_args.rewards):
        raise LedexError(
            f"--reward_weights has {len(weights)} values for {len(script_args.rewards)} rewards "
            f"({', '.join(script_args.rewards)})"
        )
    if training_args.use_cpu and not torch.cuda.is_available():
        notes.append("no GPU: training on the CPU")
    if not script_args.full_finetune and "learning_rate" not in explicit:
        training_args.learning_rate = 1e-5
    return notes


# --- the prompts ---------------------------------------------------------------------------------


def trajectories_path(data: str | Path) -> Path:
    path = Path(data)
    return path / TRAJECTORIES_FILE if path.is_dir() else path


def build_rows(
    trajectories: Iterable[Trajectory],
    tasks: Mapping[str, Any],
    *,
    styles: Sequence[str] = ("explain+refine",),
    max_references: int | None = None,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The RL dataset: one row per (wrong code with a verified trajectory, style).

    `tasks` maps problem ids to `trainer.data.Task` (tests, setup, entry point, prompt code).
    """
    for style in styles:
        if style not in STYLES:
            raise RLDataError(f"unknown style {style!r}: choose from {', '.join(STYLES)}")
    groups: dict[tuple[str, str], list[Trajectory]] = {}
    counts = {
        "trajectories": 0,
        "wrong_codes": 0,
        "with_reference": 0,
        "missing_task": 0,
        "rows": 0,
    }
    for record in trajectories:
        counts["trajectories"] += 1
        groups.setdefault((record.problem_id, record.wrong_code), []).append(record)
    counts["wrong_codes"] = len(groups)
    rows: list[dict[str, Any]] = []
    for (problem_id, wrong_code), records in groups.items():
        verified = [r for r in records if r.verified and r.refinement.strip()]
        if not verified:
            continue
        counts["with_reference"] += 1
        task = tasks.get(problem_id)
        if task is None:
            counts["missing_task"] += 1
            continue
        refinements = list(dict.fromkeys(r.refinement for r in verified))[:max_references]
        explanations = list(
            dict.fromkeys(
                r.explanation.strip()
                for r in verified
                if r.style != "refine" and r.explanation.strip()
            )
        )
        first = records[0]
        for style in styles:
            rows.append(
                {
                    "prompt": build_conversation(
                        first.task, wrong_code, first.feedback, style=check_style(style)
                    ),
                    "problem_id": problem_id,
                    "style": style,
                    "task": first.task,
                    "wrong_code": wrong_code,
                    "feedback": first.feedback,
                    "tests": encode_tests(task.tests),
                    "setup": task.setup or "",
                    "entry_point": task.entry_point or "",
                    "prompt_code": task.prompt_code or "",
                    "reference_refinements": refinements,
                    "reference_explanations": explanations,
                }
            )
    counts["rows"] = len(rows)
    return rows, counts


def load_tasks_for(script_args: RLScriptArguments, problem_sources: set[str]) -> dict[str, Any]:
    from trainer.data import load_tasks

    sources = [script_args.source] if script_args.source else sorted(problem_sources)
    tasks: dict[str, Any] = {}
    for source in sources:
        try:
            loaded = load_tasks(source, split=script_args.split, path=script_args.tasks_path)
        except (ValueError, OSError, LedexError) as error:
            raise RLDataError(f"could not load the {source} problems: {error}") from error
        tasks.update((task.id, task) for task in loaded)
    return tasks


def load_rows(script_args: RLScriptArguments) -> tuple[list[dict[str, Any]], dict[str, int]]:
    if not script_args.data:
        raise RLDataError("no data given; pass --data runs/collect (or its trajectories.jsonl)")
    path = trajectories_path(script_args.data)
    if not path.is_file():
        raise RLDataError(f"no trajectories at {path}; run `ledex-train collect` first")
    records = list(read_records(path, Trajectory))
    if not records:
        raise RLDataError(f"{path} holds no trajectories")
    tasks = load_tasks_for(script_args, {r.source for r in records})
    rows, counts = build_rows(
        records,
        tasks,
        styles=script_args.styles or ["explain+refine"],
        max_references=script_args.max_references,
    )
    if counts["with_reference"] == 0:
        raise RLDataError(
            f"none of the {counts['wrong_codes']} wrong codes in {path} has a verified trajectory"
        )
    if not rows:
        raise RLDataError(
            f"the problems of the {counts['with_reference']} wrong codes with verified "
            "trajectories were not found in their data source; check --source, --tasks_path "
            "and --split"
        )
    if script_args.max_prompts is not None:
        rows = rows[: script_args.max_prompts]
    return rows, counts


# --- the model and the rewards -------------------------------------------------------------------


def is_adapter_folder(model: str) -> bool:
    return (Path(model).expanduser() / "adapter_config.json").is_file()


def base_of_adapter(folder: str) -> str:
    """The base model of an sft output folder: `ledex-run.json`, else the adapter's own record."""
    from trainer.sft import RUN_INFO

    path = Path(folder).expanduser()
    info = path / RUN_INFO
    if info.is_file():
        base = json.loads(info.read_text()).get("base_model")
        if base:
            return str(base)
    config = json.loads((path / "adapter_config.json").read_text())
    base = config.get("base_model_name_or_path")
    if not base:
        raise LedexError(f"{folder} holds an adapter but names no base model")
    return str(base)


def load_policy(script_args: RLScriptArguments, use_cpu: bool) -> tuple[Any, Any, Any, str]:
    """(model, tokenizer, peft_config or None, base model name)."""
    from peft import PeftModel

    from trainer import modeling

    if is_adapter_folder(script_args.model):
        base = base_of_adapter(script_args.model)
        model, tokenizer = modeling.load_model_and_tokenizer(base, use_cpu=use_cpu)
        model = PeftModel.from_pretrained(
            model, str(Path(script_args.model).expanduser()), is_trainable=True
        )
        return model, tokenizer, None, base
    model, tokenizer = modeling.load_model_and_tokenizer(script_args.model, use_cpu=use_cpu)
    peft_config = None
    if not script_args.full_finetune:
        peft_config = modeling.lora_config(script_args, model)
    return model, tokenizer, peft_config, script_args.model


def build_rewards(script_args: RLScriptArguments) -> list[Any]:
    from trainer import rewards

    functions: list[Any] = []
    for name in script_args.rewards:
        if name == "refinement":
            functions.append(
                rewards.RefinementReward(
                    timeout=script_args.test_timeout,
                    workers=script_args.sandbox_workers,
                    max_references=script_args.max_references,
                )
            )
        elif name == "explanation":
            from trainer.embeddings import SentenceEmbedder

            embedder = SentenceEmbedder(script_args.embedding_model)
            embedder.load()  # a missing model is an error now, not after the first rollouts
            functions.append(rewards.ExplanationReward(embedder))
        elif name == "outcome_explanation":
            functions.append(
                rewards.OutcomeExplanationReward(
                    script_args.outcome_model,
                    samples=script_args.outcome_samples,
                    temperature=script_args.outcome_temperature,
                    max_tokens=script_args.outcome_max_tokens,
                    timeout=script_args.test_timeout,
                    workers=script_args.sandbox_workers,
                )
            )
    return functions


def _drop_long_prompts(
    rows: list[dict[str, Any]], tokenizer: Any, limit: int
) -> tuple[list[dict[str, Any]], int]:
    kept = []
    for row in rows:
        ids = tokenizer.apply_chat_template(
            row["prompt"], tokenize=True, add_generation_prompt=True
        )
        if hasattr(ids, "keys"):
            ids = ids["input_ids"]
        if len(ids) <= limit:
            kept.append(row)
    return kept, len(rows) - len(kept)


@dataclass
class Prepared:
    trainer: Any
    counts: dict[str, int]
    notes: list[str]
    base_model: str


def build_trainer(
    script_args: RLScriptArguments, training_args: LedexGRPOConfig, explicit: AbstractSet[str] = frozenset()
) -> Prepared:
    """Read the data, load the model, build the rewards and the GRPOTrainer (not started)."""
    from datasets import Dataset
    from trl import GRPOTrainer

    notes = finalize_config(script_args, training_args, explicit)
    rows, counts = load_rows(script_args)
    model, tokenizer, peft_config, base = load_policy(script_args, training_args.use_cpu)
    rows, too_long = _drop_long_prompts(rows, tokenizer, script_args.max_prompt_tokens)
    counts["too_long"] = too_long
    counts["used"] = len(rows)
    if not rows:
        raise RLDataError(
            f"every prompt is longer than {script_args.max_prompt_tokens} tokens; "
            "raise --max_prompt_tokens"
        )
    if too_long:
        notes.append(
            f"{too_long} prompts longer than {script_args.max_prompt_tokens} tokens left out"
        )
    reward_funcs = build_rewards(script_args)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward_funcs,
        args=training_args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    for function in reward_funcs:
        if hasattr(function, "attach_policy"):
            function.attach_policy(trainer.model, tokenizer)
    return Prepared(trainer, counts, notes, base)


# --- the command ---------------------------------------------------------------------------------


def run(
    script_args: RLScriptArguments, training_args: LedexGRPOConfig, explicit: set[str]
) -> dict[str, Any]:
    from trainer.sft import checkpoint_to_resume, finish, write_run_info

    prepared = build_trainer(script_args, training_args, explicit)
    trainer = prepared.trainer
    is_main = trainer.accelerator.is_main_process
    say = (
        (lambda text: print(f"ledex-train rl: {text}", file=sys.stderr, flush=True))
        if is_main
        else (lambda _t: None)
    )
    counts = prepared.counts
    weights = training_args.reward_weights or [1.0] * len(script_args.rewards)
    pairs = list(zip(script_args.rewards, weights, strict=True))
    say(
        f"{counts['used']} prompts from {counts['with_reference']} wrong codes with verified "
        f"trajectories ({counts['wrong_codes']} wrong codes, {counts['trajectories']} "
        f"trajectories); rewards {', '.join(f'{n}×{w:g}' for n, w in pairs)}; "
        f"model {script_args.model}"
    )
    for note in prepared.notes:
        say(note)
    if counts["missing_task"]:
        say(f"{counts['missing_task']} wrong codes left out: their problems were not found")
    resume = checkpoint_to_resume(script_args, training_args)
    if resume:
        say(f"resuming from {resume}")
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - started
    trainer.save_model(training_args.output_dir)
    rewards = [
        {k: v for k, v in entry.items() if k.startswith("rewards/") or k == "reward"}
        for entry in trainer.state.log_history
        if "reward" in entry
    ]
    info = {
        "stage": "rl",
        "base_model": prepared.base_model,
        "started_from": script_args.model,
        "adapter": not script_args.full_finetune or is_adapter_folder(script_args.model),
        "data": str(script_args.data),
        "styles": script_args.styles or ["explain+refine"],
        "rewards": dict(zip(script_args.rewards, weights, strict=True)),
        "embedding_model": script_args.embedding_model
        if "explanation" in script_args.rewards
        else None,
        "prompts": counts,
        "global_step": trainer.state.global_step,
        "train_loss": result.training_loss,
        "last_rewards": rewards[-1] if rewards else {},
        "seconds": round(seconds, 1),
        "resumed_from": resume,
    }
    if is_main:
        assert training_args.output_dir is not None  # TrainingArguments fills in a default
        write_run_info(training_args.output_dir, info)
        last = info["last_rewards"].get("reward")
        say(
            f"done: {trainer.state.global_step} steps"
            + (f", last mean reward {last:.3f}" if last is not None else "")
            + f", saved to {training_args.output_dir}"
        )
        say(f"next: ledex-train export --run {training_args.output_dir}")
    finish(trainer)
    return info


def main(argv: Sequence[str] | None = None) -> int:
    from trainer.cli import run_stage

    return run_stage("rl", argv, lambda args: run(*parse_args(args)))


if __name__ == "__main__":  # `accelerate launch -m trainer.rl ...`
    raise SystemExit(main())
