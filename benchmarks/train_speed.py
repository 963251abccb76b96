"""SFT training speed: optimizer steps per second and peak memory of `ledex-train sft`'s trainer.

    python benchmarks/train_speed.py                                  # embedded:0.5b, LoRA, 256 tokens
    python benchmarks/train_speed.py --model embedded:1.5b --tokens 512 --batch 4
    python benchmarks/train_speed.py --full_finetune --json out.json
    python benchmarks/train_speed.py --bf16 --tokens 512              # bf16 autocast
    python benchmarks/train_speed.py --float32 --tokens 512           # ... against float32
    python benchmarks/train_speed.py --model FOLDER --random_init     # same shapes, random weights

It runs the real trainer (`trainer.sft.build_trainer`: the chat template, the completion-only loss,
LoRA on every projection, TRL's SFTTrainer) on synthetic trajectories whose rendered conversation is
exactly `--tokens` tokens long, times each optimizer step after `--warmup` untimed ones, and reports
steps/s, trained tokens/s, peak resident memory of the process (model load included) and, on a GPU,
peak GPU memory. `--random_init` builds the model from the folder's config with random weights (a
machine without the GGUF weights measures the same shapes; speed does not depend on the values).
Nothing is typed in: every figure printed is measured in this run. On a shared or loaded machine
the CPU figures vary from run to run; the printed load average says how busy the machine was.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _trajectory(index: int, filler_words: int):
    from trainer.records import Trajectory

    filler = " ".join(f"w{i % 50}" for i in range(filler_words))
    return Trajectory(
        key=f"bench/{index}",
        problem_id=f"bench{index}",
        source="jsonl",
        task=f"Write `total(xs)` returning the sum of xs. Notes: {filler}\n\nassert total([1, 2]) == 3",
        wrong_code="def total(xs):\n    return sum(xs[1:])",
        feedback="assert total([1, 2]) == 3\nAssertionError: got 2, expected 3",
        style="explain+refine",
        reply="",
        explanation="The slice xs[1:] skips the first element, so it is missing from the sum.",
        refinement="def total(xs):\n    return sum(xs)",
        passed=[True],
        status="passed",
        teacher="benchmark",
    )


def _length(tokenizer, filler_words: int) -> int:
    from trainer import chat_data

    example = chat_data.to_example(_trajectory(0, filler_words))
    ids = tokenizer.apply_chat_template(example["prompt"] + example["completion"], tokenize=True)
    return len(ids["input_ids"] if hasattr(ids, "keys") else ids)


def sized_trajectories(tokenizer, tokens: int, count: int):
    """`count` trajectories whose rendered conversation is `tokens` tokens (or just under)."""
    low, high = 0, 1
    while _length(tokenizer, high) <= tokens:
        high *= 2
    while low + 1 < high:  # largest filler with length <= tokens
        mid = (low + high) // 2
        low, high = (mid, high) if _length(tokenizer, mid) <= tokens else (low, mid)
    if _length(tokenizer, low) > tokens:
        raise SystemExit(f"the shortest example is longer than {tokens} tokens")
    return [_trajectory(i, low) for i in range(count)], _length(tokenizer, low)


def model_folder(model: str, random_init: bool, scratch: Path) -> str:
    from trainer import modeling

    source = modeling.resolve_model(model)
    folder = str(modeling.ensure_gguf_converted(source)) if source.is_gguf else source.location
    if not random_init:
        return model
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(folder)
    torch.manual_seed(0)
    random_model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    target = scratch / "random-init"
    random_model.save_pretrained(target)
    AutoTokenizer.from_pretrained(folder).save_pretrained(target)
    return str(target)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded:0.5b")
    parser.add_argument("--tokens", type=int, default=256, help="tokens per example")
    parser.add_argument("--batch", type=int, default=1, help="examples per step")
    parser.add_argument("--steps", type=int, default=5, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first steps")
    parser.add_argument("--full_finetune", action="store_true")
    parser.add_argument("--gradient_checkpointing", action="store_true", help="TRL's default; off here")
    parser.add_argument("--random_init", action="store_true")
    precision = parser.add_mutually_exclusive_group()  # neither: the trainer's choice for this machine
    precision.add_argument("--bf16", action="store_true", help="bf16 autocast")
    precision.add_argument("--float32", action="store_true", help="float32, no autocast")
    parser.add_argument("--lora_layers", type=int, help="adapt only the last N layers (sft's option)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    import torch
    from transformers import AutoTokenizer, TrainerCallback

    from trainer import sft
    from trainer.records import append_jsonl

    load_before = os.getloadavg()
    scratch = Path(tempfile.mkdtemp(prefix="ledex-train-speed-"))
    started = time.perf_counter()
    model = model_folder(args.model, args.random_init, scratch)
    from trainer import modeling

    source = modeling.resolve_model(model)
    tokenizer_folder = modeling.ensure_gguf_converted(source) if source.is_gguf else source.location
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_folder))
    records, length = sized_trajectories(tokenizer, args.tokens, args.batch * (args.steps + args.warmup))
    data = scratch / "trajectories.jsonl"
    append_jsonl(data, records)

    argv = [
        "--data", str(data), "--model", model, "--output_dir", str(scratch / "run"),
        "--max_steps", str(args.steps + args.warmup), "--per_device_train_batch_size", str(args.batch),
        "--gradient_accumulation_steps", "1", "--save_strategy", "no", "--logging_steps", "1",
        "--max_length", str(args.tokens), "--gradient_checkpointing", str(args.gradient_checkpointing).lower(),
        "--report_to", "none", "--disable_tqdm", "true",
    ]  # fmt: skip
    if args.full_finetune:
        argv.append("--full_finetune")
    if args.bf16 or args.float32:
        argv += ["--bf16", str(args.bf16).lower()]
    if args.lora_layers:
        argv += ["--lora_layers", str(args.lora_layers)]
    script_args, training_args, explicit = sft.parse_args(argv)
    prepared = sft.build_trainer(script_args, training_args, explicit)
    trainer = prepared.trainer
    load_seconds = time.perf_counter() - started

    durations: list[float] = []
    cpu_times: list[float] = []  # CPU seconds of this process (all threads): steadier on a busy machine

    class Timer(TrainerCallback):
        def on_step_begin(self, *_a, **_k):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.t = time.perf_counter()
            self.cpu = time.process_time()

        def on_step_end(self, *_a, **_k):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            durations.append(time.perf_counter() - self.t)
            cpu_times.append(time.process_time() - self.cpu)

    trainer.add_callback(Timer())
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    timed = durations[args.warmup :]
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in trainer.model.parameters())
    result = {
        "model": args.model + (" (random init)" if args.random_init else ""),
        "method": "full" if args.full_finetune else "lora r=16 (all projections" + (f", last {args.lora_layers} layers)" if args.lora_layers else ")"),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})",
        "dtype": "bf16 autocast" if training_args.bf16 else "float32",
        "tokens_per_example": length,
        "batch": args.batch,
        "gradient_checkpointing": args.gradient_checkpointing,
        "timed_steps": len(timed),
        "seconds_per_step": round(sum(timed) / len(timed), 3),
        "steps_per_second": round(len(timed) / sum(timed), 3),
        "tokens_per_second": round(len(timed) * args.batch * length / sum(timed), 1),
        "step_seconds": [round(d, 3) for d in timed],
        "cpu_seconds_per_step": round(sum(cpu_times[args.warmup :]) / len(timed), 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20) if torch.cuda.is_available() else None,
        "trainable_parameters": trainable,
        "parameters": total,
        "load_seconds": round(load_seconds, 1),
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "torch_threads": torch.get_num_threads(),
    }
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
