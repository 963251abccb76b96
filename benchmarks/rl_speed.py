"""GRPO steps/s and peak memory of `ledex-train rl` on this machine (LoRA, the LeDex rewards).

    python benchmarks/rl_speed.py [--model embedded:0.5b] [--steps 4] [--prompts 8]
                                  [--num_generations 2] [--max_completion_length 64] [--threads N]
                                  [--rewards refinement explanation] [--random_init]

The data is real: the first `--prompts` MBPP train problems (../shared/data/mbpp), each with a wrong
code made from its reference solution (the first `return` returns None) and the reference as the
verified refinement, written as a collect output folder; the tests run in the sandbox. The run is
`trainer.rl.build_trainer` + `trainer.train()`, exactly what `ledex-train rl` does. One step is one
optimizer step of `num_generations` completions of one prompt (batch = num_generations). Reported:
the median seconds per step after the first (which pays for warm-up), steps/s, the share of the
step spent in the reward functions, the mean completion length, and the process's peak RSS (and the
GPU's peak allocation when there is one). The first load of a GGUF model converts it (cached).
`--random_init` builds the model from `--model`'s config with random weights, as in
train_speed.py (same shapes, so the same speed; a machine with only the config and tokenizer can
measure it). `--rewards refinement` leaves out the explanation reward (no embedding model needed).
MBPP is read where `trainer.data` reads it (`$LEDEX_MBPP_PATH` points elsewhere).
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__":  # run as a script: make `ledex`, `trainer` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def make_collect_dir(folder: Path, prompts: int) -> int:
    from ledex.dialogue import problem_task
    from ledex.sandbox import Program, run_many
    from trainer.data import load_tasks
    from trainer.records import TRAJECTORIES_FILE, Trajectory, append_jsonl

    tasks = load_tasks("mbpp", split="train")
    chosen, wrongs = [], []
    for task in tasks:
        wrong = re.sub(r"\breturn\b[^\n]*", "return None", task.reference, count=1)
        if wrong != task.reference:
            chosen.append(task)
            wrongs.append(wrong)
        if len(chosen) == prompts * 2:
            break
    results = run_many([Program(w, t.tests, t.setup) for w, t in zip(wrongs, chosen, strict=True)])
    records: list[Trajectory] = []
    for task, wrong, result in zip(chosen, wrongs, results, strict=True):
        if result.ok or len(records) >= prompts:
            continue
        records.append(
            Trajectory(
                key=f"{task.id}/bench/explain+refine/0",
                problem_id=task.id,
                source="mbpp",
                task=problem_task(task.description, task.tests, task.entry_point),
                wrong_code=wrong,
                feedback=result.feedback,
                style="explain+refine",
                reply="",
                explanation="The function returns None instead of the computed result.",
                refinement=task.reference,
                passed=[True] * len(task.tests),
                status="passed",
                teacher="reference",
            )
        )
    append_jsonl(folder / TRAJECTORIES_FILE, records)
    return len(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded:0.5b")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--num_generations", type=int, default=2)
    parser.add_argument("--max_completion_length", type=int, default=64)
    parser.add_argument("--embedding_model", default="all-MiniLM-L6-v2")
    parser.add_argument("--rewards", nargs="+", default=["refinement", "explanation"])
    parser.add_argument("--random_init", action="store_true", help="random weights, same shapes")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    options = parser.parse_args()

    import torch
    from transformers import TrainerCallback

    from benchmarks.train_speed import model_folder
    from trainer import rl

    if options.threads:
        torch.set_num_threads(options.threads)
    work = Path(tempfile.mkdtemp(prefix="ledex-rl-speed-"))
    count = make_collect_dir(work / "collect", options.prompts)
    model = model_folder(options.model, options.random_init, work)
    args = [
        "--data", str(work / "collect"),
        "--model", model,
        "--rewards", *options.rewards,
        "--output_dir", str(work / "rl"),
        "--embedding_model", options.embedding_model,
        "--num_generations", str(options.num_generations),
        "--per_device_train_batch_size", str(options.num_generations),
        "--gradient_accumulation_steps", "1",
        "--max_completion_length", str(options.max_completion_length),
        "--max_steps", str(options.steps),
        "--save_strategy", "no",
        "--logging_steps", "1",
    ]  # fmt: skip
    script_args, training_args, explicit = rl.parse_args(args)
    loading = time.perf_counter()
    prepared = rl.build_trainer(script_args, training_args, explicit)
    load_seconds = time.perf_counter() - loading
    trainer = prepared.trainer

    reward_seconds = [0.0]

    def timed(function):
        def call(*a, **k):
            started = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                reward_seconds[0] += time.perf_counter() - started

        call.__name__ = function.__name__
        return call

    trainer.reward_funcs = [timed(f) for f in trainer.reward_funcs]

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.steps: list[float] = []
            self.rewards: list[float] = []
            self._start = 0.0

        def on_step_begin(self, *args, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self._start = time.perf_counter()
            reward_seconds[0] = 0.0

        def on_step_end(self, *args, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.steps.append(time.perf_counter() - self._start)
            self.rewards.append(reward_seconds[0])

    clock = Clock()
    trainer.add_callback(clock)
    trainer.train()

    logs = [entry for entry in trainer.state.log_history if "reward" in entry]
    timed_steps = clock.steps[1:] or clock.steps
    median = statistics.median(timed_steps)
    reward_share = sum(clock.rewards[1:] or clock.rewards) / sum(timed_steps)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    dtype = "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "float32"
    result = {
        "model": options.model + (" (random init)" if options.random_init else ""),
        "rewards": options.rewards,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "torch_threads": torch.get_num_threads(),
        "prompts": count,
        "num_generations": options.num_generations,
        "max_completion_length": options.max_completion_length,
        "lora_r": None if script_args.full_finetune else script_args.lora_r,
        "dtype": dtype,
        "steps": len(clock.steps),
        "load_seconds": round(load_seconds, 1),
        "first_step_seconds": round(clock.steps[0], 2),
        "median_step_seconds": round(median, 2),
        "steps_per_second": round(1 / median, 4),
        "reward_share": round(reward_share, 3),
        "mean_completion_tokens": round(
            statistics.mean(e["completions/mean_length"] for e in logs), 1
        ),
        "mean_reward": round(statistics.mean(e["reward"] for e in logs), 3),
        "peak_rss_mib": round(peak_rss),
    }
    if torch.cuda.is_available():
        result["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    for key, value in result.items():
        print(f"{key:>24}: {value}")
    if options.json:
        Path(options.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
