"""`ledex-train sft`: supervised fine-tuning on verified trajectories (LeDex §2.2).

    ledex-train sft --data runs/collect --model embedded:0.5b --output_dir runs/sft
    ledex-train sft --config sft.yaml          # the same options from a YAML file (flags win)
    accelerate launch --config_file trainer/accelerate/multi_gpu.yaml -m trainer.sft --data ...

Configured like TRL's example scripts: two dataclasses (`SFTScriptArguments` for what to train on
and how to adapt the model, `LedexSFTConfig` = TRL's `SFTConfig` with LeDex's defaults), parsed by
`trl.TrlParser` from flags and/or `--config FILE.yaml`. TRL's SFTTrainer does the work.

- Data: the verified trajectories of `ledex-train collect` (all tests passing), rendered by
  `ledex.dialogue` in the model's own chat template, as prompt (task, wrong code, feedback) and
  completion (explanation + corrected code). The loss is on the completion only
  (`completion_only_loss`): never on the task, and never on the wrong code, although that is an
  assistant turn too.
- Model: any HF causal LM (folder or hub id), a `.gguf` file, or an embedded model
  (`embedded:0.5b`), dequantised by transformers and cached as safetensors (`trainer.modeling`).
- LoRA on every attention and MLP projection by default (`--full_finetune` trains all weights).
- Defaults from the paper: 2 epochs, cosine schedule with warmup, learning rate 2e-5 for full
  fine-tuning (LoRA's default is 2e-4: a low-rank update needs a larger step). The batch is scaled to
  the data: a small data set gets a smaller gradient accumulation, so an epoch has several steps.
- Resumes: when `output_dir` holds checkpoints, training continues from the last one
  (`--no_resume` starts over; `--resume_from_checkpoint DIR` picks one).

The output folder holds the adapter (or the full model), the tokenizer, and `ledex-run.json`
(the base model and what was trained) that `ledex-train export` reads.
"""


import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trl import SFTConfig

from ledex.errors import LedexError
from trainer.modeling import AdaptationArguments

RUN_INFO = "ledex-run.json"


@dataclass
class SFTScriptArguments(AdaptationArguments):
    """What to train on, and how to adapt the model."""

    data: list[str] = field(
        default_factory=list,
        metadata={
            "help": "trajectories.jsonl written by `ledex-train collect` (or `collect_projects`), or "
            "its output folder; several are mixed (`max_examples` caps each)"
        },
    )
    model: str = field(
        default="embedded:0.5b",
        metadata={
            "help": "base model: an HF folder or hub id, a .gguf file, or an embedded model "
            "(embedded:0.5b, embedded:1.5b, smollm2-135m)"
        },
    )
    styles: list[str] | None = field(
        default=None,
        metadata={"help": "dialogue styles to train on: explain+refine and/or refine (default: both)"},
    )
    max_examples: list[int] | None = field(
        default=None,
        metadata={
            "help": "use at most this many examples of each data folder: one number for every "
            "folder, or one per folder, in the order of --data"
        },
    )

    def __post_init__(self) -> None:
        if isinstance(self.data, str):  # `data: runs/collect` in a YAML file
            self.data = [self.data]
        if isinstance(self.max_examples, int):  # `max_examples: 200` in a YAML file
            self.max_examples = [self.max_examples]
        if self.max_examples is not None:
            if len(self.max_examples) not in (1, len(self.data)) and self.data:
                raise ValueError(
                    f"max_examples has {len(self.max_examples)} numbers for {len(self.data)} data "
                    "folders: give one number for all of them, or one per folder"
                )
            if any(n < 1 for n in self.max_examples):
                raise ValueError(f"max_examples must be at least 1, not {min(self.max_examples)}")


@dataclass
class LedexSFTConfig(SFTConfig):
    """TRL's SFTConfig with LeDex's defaults (each can be overridden by a flag or the YAML file)."""

    output_dir: str | None = field(default="runs/sft", metadata={"help": "where the run is written"})
    num_train_epochs: float = field(default=2.0, metadata={"help": "epochs (LeDex: 2)"})
    learning_rate: float = field(
        default=2e-5,
        metadata={"help": "peak learning rate (LeDex: 2e-5 full; 2e-4 when LoRA and not given)"},
    )
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "learning-rate schedule"})
    warmup_steps: float = field(
        default=0.03, metadata={"help": "warmup: steps, or a fraction of all steps when < 1"}
    )
    per_device_train_batch_size: int = field(default=4, metadata={"help": "batch per device"})
    gradient_accumulation_steps: int = field(
        default=8,
        metadata={"help": "accumulation (lowered for small data sets unless given explicitly)"},
    )
    max_length: int | None = field(
        default=2048,
        metadata={"help": "longest example in tokens; longer examples are left out, not cut"},
    )
    logging_steps: float = field(default=5, metadata={"help": "log every N steps"})
    save_steps: float = field(default=50, metadata={"help": "checkpoint every N steps"})
    save_total_limit: int | None = field(default=2, metadata={"help": "checkpoints kept"})
    report_to: None | str | list[str] = field(default="none", metadata={"help": "trackers"})
    seed: int = field(default=42, metadata={"help": "random seed"})

    def __post_init__(self) -> None:
        cpu_only(self)
        super().__post_init__()


def cpu_only(config: Any) -> None:
    """Without a GPU, train on the CPU (TRL configs default to bf16 and refuse a CPU): with bf16
    autocast where the CPU has bf16 instructions, in float32 elsewhere; `--bf16 true|false` wins."""
    import torch

    from trainer.modeling import cpu_trains_faster_in_bf16

    if not torch.cuda.is_available():
        config.use_cpu = True
    if config.use_cpu and config.bf16 is None:
        config.bf16 = not config.fp16 and cpu_trains_faster_in_bf16()  # one of the two


# --- parsing -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> tuple[SFTScriptArguments, LedexSFTConfig, set[str]]:
    """Parse flags and `--config FILE`; also return the option names the user set explicitly."""
    from trl import TrlParser

    args = list(argv)
    parser = TrlParser((SFTScriptArguments, LedexSFTConfig), prog="ledex-train sft")
    script_args, training_args = parser.parse_args_and_config(args)
    return script_args, training_args, explicit_options(args)


def explicit_options(argv: Sequence[str]) -> set[str]:
    """Option names given as flags or in the `--config` YAML file (to tell them from defaults)."""
    import yaml

    names: set[str] = set()
    args = list(argv)
    for index, arg in enumerate(args):
        if arg == "--config" and index + 1 < len(args):
            with open(args[index + 1]) as handle:
                config = yaml.safe_load(handle) or {}
            if isinstance(config, dict):
                names |= set(config)
        elif arg.startswith("--"):
            name = arg[2:].split("=", 1)[0].replace("-", "_")  # --learning-rate is --learning_rate
            names.add(name[3:] if name.startswith("no_") else name)
    return names


def finalize_config(
    script_args: SFTScriptArguments,
    training_args: LedexSFTConfig,
    explicit: AbstractSet[str],
    n_examples: int,
) -> list[str]:
    """Fill in the defaults that depend on the machine and the data; return what was changed."""
    notes: list[str] = []
    if training_args.use_cpu:
        notes.append("training on the CPU" + (" (bf16 autocast)" if training_args.bf16 else ""))
    if not script_args.full_finetune and "learning_rate" not in explicit:
        training_args.learning_rate = 2e-4
    training_args.completion_only_loss = True
    training_args.assistant_only_loss = False
    world = max(1, training_args.world_size)
    batch = training_args.per_device_train_batch_size
    if "per_device_train_batch_size" not in explicit and n_examples < batch * world:
        training_args.per_device_train_batch_size = max(1, n_examples // world)
        notes.append(f"batch per device lowered to {training_args.per_device_train_batch_size}")
    if "gradient_accumulation_steps" not in explicit:
        per_step = training_args.per_device_train_batch_size * world
        # at least ~8 optimizer steps per epoch, so warmup and the cosine schedule mean something
        wanted = max(1, min(training_args.gradient_accumulation_steps, n_examples // (per_step * 8)))
        if wanted != training_args.gradient_accumulation_steps:
            training_args.gradient_accumulation_steps = wanted
            notes.append(f"gradient accumulation lowered to {wanted} for {n_examples} examples")
    return notes


# --- building the trainer ------------------------------------------------------------------------


@dataclass
class Prepared:
    trainer: Any
    counts: dict[str, int]
    notes: list[str]
    source: Any  # trainer.modeling.ModelSource


def build_trainer(
    script_args: SFTScriptArguments, training_args: LedexSFTConfig, explicit: AbstractSet[str] = frozenset()
) -> Prepared:
    """Read the data, load the model, and build the SFTTrainer (not started)."""
    from datasets import Dataset
    from trl import SFTTrainer

    from trainer import chat_data, modeling

    if not script_args.data:
        raise chat_data.DataError("no training data given; pass --data runs/collect (or its trajectories.jsonl)")
    examples, counts = chat_data.load_mixture(
        script_args.data, styles=script_args.styles, max_examples=script_args.max_examples
    )
    source = modeling.resolve_model(script_args.model)
    import torch

    use_cpu = training_args.use_cpu or not torch.cuda.is_available()
    model, tokenizer = modeling.load_model_and_tokenizer(script_args.model, use_cpu=use_cpu)
    examples, too_long = _drop_too_long(examples, tokenizer, training_args.max_length)
    counts["too_long"] = too_long
    counts["used"] = len(examples)
    if not examples:
        raise chat_data.DataError(
            f"every verified example is longer than max_length={training_args.max_length} tokens; "
            "raise --max_length"
        )
    notes = finalize_config(script_args, training_args, explicit, len(examples))
    if too_long:
        notes.append(f"{too_long} examples longer than {training_args.max_length} tokens left out")

    peft_config = None
    if not script_args.full_finetune:
        peft_config = modeling.lora_config(script_args, model)
    dataset = Dataset.from_list([{"prompt": e["prompt"], "completion": e["completion"]} for e in examples])
    trainer = SFTTrainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    return Prepared(trainer, counts, notes, source)


def _drop_too_long(
    examples: list[dict[str, Any]], tokenizer: Any, max_length: int | None
) -> tuple[list[dict[str, Any]], int]:
    """Cutting an example would cut its answer (it comes last): leave such examples out instead."""
    if not max_length:
        return examples, 0
    kept = []
    for example in examples:
        ids = tokenizer.apply_chat_template(example["prompt"] + example["completion"], tokenize=True)
        if hasattr(ids, "keys"):  # a BatchEncoding in recent transformers
            ids = ids["input_ids"]
        if len(ids) <= max_length:
            kept.append(example)
    return kept, len(examples) - len(kept)


def checkpoint_to_resume(script_args: AdaptationArguments, training_args: Any) -> str | None:
    """The checkpoint to continue from: an explicit one, else the last in output_dir (if resuming)."""
    from transformers.trainer_utils import get_last_checkpoint

    explicit = training_args.resume_from_checkpoint
    if explicit:
        if not Path(explicit).is_dir():
            raise LedexError(f"checkpoint not found: {explicit}")
        return str(explicit)
    output = Path(training_args.output_dir)
    if script_args.resume and output.is_dir():
        return get_last_checkpoint(str(output))
    return None


def finish(trainer: Any) -> None:
    """End the run: the trackers, then the process group. In a run of several processes (torchrun,
    `accelerate launch`), each process exits here, once every process has got this far.

    Why exit rather than return: once the trainer is freed, the DDP reducer's gloo process group
    joins its worker threads while the freeing thread holds the GIL, and a worker still releasing
    a finished collective waits for that GIL, so the process hangs after a run that succeeded
    (torch 2.13 on the CPU: one run in two in a loop of the two-process test, and once in CI).
    `os._exit` frees nothing; the adapter and `ledex-run.json` are written before it, and what
    exit hooks would have done is done here (wandb's run, which its callback leaves to atexit, and
    the logging handlers)."""
    distributed = trainer.accelerator.num_processes > 1
    if distributed:
        trainer.accelerator.wait_for_everyone()  # the main process has written the run's files
    trainer.end()
    if distributed:
        wandb = sys.modules.get("wandb")
        if wandb is not None and getattr(wandb, "run", None) is not None:
            wandb.finish()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def write_run_info(output_dir: str | Path, info: dict[str, Any]) -> Path:
    """`ledex-run.json`: the base model and what was trained (read by `ledex-train export`)."""
    path = Path(output_dir) / RUN_INFO
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info, indent=2) + "\n")
    return path


# --- the command ---------------------------------------------------------------------------------


def run(script_args: SFTScriptArguments, training_args: LedexSFTConfig, explicit: set[str]) -> dict[str, Any]:
    prepared = build_trainer(script_args, training_args, explicit)
    trainer = prepared.trainer
    is_main = trainer.accelerator.is_main_process

    def say(text: str) -> None:
        if is_main:
            print(f"ledex-train sft: {text}", file=sys.stderr, flush=True)

    counts = prepared.counts
    say(
        f"{counts['used']} examples from {counts['verified']} verified of {counts['records']} "
        f"trajectories; model {script_args.model}; "
        + ("full fine-tuning" if script_args.full_finetune else f"LoRA r={script_args.lora_r}")
    )
    for note in prepared.notes:
        say(note)
    resume = checkpoint_to_resume(script_args, training_args)
    if resume:
        say(f"resuming from {resume}")
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - started
    trainer.save_model(training_args.output_dir)
    info = {
        "stage": "sft",
        "base_model": script_args.model,
        "base_location": prepared.source.location,
        "gguf_sha256": prepared.source.gguf_sha256,
        "adapter": not script_args.full_finetune,
        "data": script_args.data,
        "styles": script_args.styles or ["explain+refine", "refine"],
        "examples": counts,
        "global_step": trainer.state.global_step,
        "train_loss": result.training_loss,
        "seconds": round(seconds, 1),
        "resumed_from": resume,
    }
    if is_main:
        assert training_args.output_dir is not None  # TrainingArguments fills in a default
        write_run_info(training_args.output_dir, info)
        say(
            f"done: {trainer.state.global_step} steps, loss {result.training_loss:.4f}, "
            f"saved to {training_args.output_dir}"
        )
        say(f"next: ledex-train export --run {training_args.output_dir}")
    finish(trainer)
    return info


def main(argv: Sequence[str] | None = None) -> int:
    from trainer.cli import run_stage

    return run_stage("sft", argv, lambda args: run(*parse_args(args)))


if __name__ == "__main__":  # `accelerate launch -m trainer.sft ...` / `torchrun -m trainer.sft ...`
    raise SystemExit(main())
