"""`ledex-train rl`: the prompt data set, and real GRPO steps (with the LeDex rewards) that resume.

The training runs are real: TRL's GRPOTrainer generates with the model, the rewards run the
refinements in the sandbox and embed the explanations with all-MiniLM-L6-v2, and the optimizer
steps. `tiny_model_dir` (random weights, SmolLM2's tokenizer) keeps them to seconds; its replies are
noise, so every reward is at its minimum there. SmolLM2-135M-Instruct writes real code blocks, so
its rewards differ within a group and the adapter moves.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("trl")
pytest.importorskip("sentence_transformers")

from ledex.dialogue import build_conversation  # noqa: E402
from ledex.sandbox import IOTest  # noqa: E402
from tests.trainer.conftest import make_trajectory  # noqa: E402
from trainer import rl  # noqa: E402
from trainer.data import Task  # noqa: E402
from trainer.records import TRAJECTORIES_FILE, append_jsonl  # noqa: E402
from trainer.rewards import decode_tests  # noqa: E402


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread: on a small machine shared with other jobs, torch's thread pool spins
    against them and a 16-token generation of the tiny model takes seconds instead of 0.3 s."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def task_for(index: int) -> Task:
    return Task(
        id=f"p{index}",
        source="jsonl",
        description=f"Return the sum of xs in total_{index}(xs).",
        tests=(f"assert total_{index}([1, 2]) == 3", f"assert total_{index}([]) == 0"),
        entry_point=f"total_{index}",
    )


def test_build_rows_keeps_wrong_codes_with_a_verified_reference() -> None:
    second = make_trajectory(0).__class__(
        **{
            **make_trajectory(0).__dict__,
            "key": "p0/abc/explain+refine/1",
            "explanation": "Other words.",
        }
    )
    refine = make_trajectory(0, style="refine").__class__(
        **{
            **make_trajectory(0, style="refine").__dict__,
            "explanation": "",
            "refinement": "def total_0(xs):\n    return sum(xs[0:])",
        }
    )
    records = [
        make_trajectory(0),
        second,
        refine,
        make_trajectory(1, passed=False),
        make_trajectory(2),
    ]
    tasks = {"p0": task_for(0), "p1": task_for(1)}  # p2's problem is missing
    rows, counts = rl.build_rows(records, tasks, styles=["explain+refine", "refine"])

    assert counts == {
        "trajectories": 5,
        "wrong_codes": 3,
        "with_reference": 2,
        "missing_task": 1,
        "rows": 2,
    }
    assert [row["style"] for row in rows] == ["explain+refine", "refine"]
    row = rows[0]
    first = make_trajectory(0)
    assert row["prompt"] == build_conversation(first.task, first.wrong_code, first.feedback)
    assert rows[1]["prompt"] == build_conversation(
        first.task, first.wrong_code, first.feedback, style="refine"
    )
    assert row["reference_refinements"] == [
        first.refinement,
        "def total_0(xs):\n    return sum(xs[0:])",
    ]
    # explanations of refine-style replies are not references
    assert row["reference_explanations"] == [first.explanation, "Other words."]
    assert decode_tests(row["tests"]) == task_for(0).tests
    assert row["entry_point"] == "total_0"


def test_build_rows_encodes_stdin_tests() -> None:
    task = Task(id="p0", source="jsonl", description="echo", tests=(IOTest("a\n", "a\n"),))
    rows, _ = rl.build_rows([make_trajectory(0)], {"p0": task})
    assert decode_tests(rows[0]["tests"]) == (IOTest("a\n", "a\n"),)


def test_rl_without_data_is_one_clear_error(capsys, tmp_path) -> None:
    assert (
        rl.main(["--data", str(tmp_path / "nothing"), "--output_dir", str(tmp_path / "out")]) == 1
    )
    assert capsys.readouterr().err.strip().startswith("ledex-train rl: error: no trajectories at")


def test_unknown_reward_is_one_clear_error(capsys, tmp_path) -> None:
    code = rl.main(
        ["--data", str(tmp_path), "--rewards", "vibes", "--output_dir", str(tmp_path / "o")]
    )
    assert code == 1
    assert "unknown reward" in capsys.readouterr().err


# --- real training -------------------------------------------------------------------------------


@pytest.fixture
def collect_dir(tmp_path: Path) -> Path:
    """A collect output folder (4 verified wrong codes, 1 failed) and the problems' jsonl file."""
    folder = tmp_path / "collect"
    append_jsonl(
        folder / TRAJECTORIES_FILE,
        [make_trajectory(i) for i in range(4)] + [make_trajectory(9, passed=False)],
    )
    problems = folder / "problems.jsonl"
    problems.write_text(
        "".join(
            json.dumps(
                {
                    "id": t.id,
                    "description": t.description,
                    "tests": list(t.tests),
                    "entry_point": t.entry_point,
                }
            )
            + "\n"
            for t in map(task_for, [0, 1, 2, 3, 9])
        )
    )
    return folder


def base_args(collect_dir: Path, model: str, output: Path, *extra: str) -> list[str]:
    return [
        "--data", str(collect_dir),
        "--tasks_path", str(collect_dir / "problems.jsonl"),
        "--model", model,
        "--output_dir", str(output),
        "--embedding_model", "all-MiniLM-L6-v2",
        "--num_generations", "2",
        "--per_device_train_batch_size", "2",
        "--gradient_accumulation_steps", "1",
        "--max_completion_length", "16",
        "--save_steps", "1",
        "--logging_steps", "1",
        "--sandbox_workers", "2",
        "--seed", "0",
        *extra,
    ]  # fmt: skip


def test_grpo_steps_log_the_rewards_and_resume(
    collect_dir, tiny_model_dir, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    output = tmp_path / "rl"
    args = base_args(
        collect_dir,
        str(tiny_model_dir),
        output,
        "--rewards", "refinement", "explanation", "outcome_explanation",
        "--reward_weights", "1.0", "0.5", "0.5",
        "--outcome_samples", "2",
        "--outcome_max_tokens", "8",
        "--beta", "0.04",
    )  # fmt: skip
    script_args, training_args, explicit = rl.parse_args([*args, "--max_steps", "1"])
    info = rl.run(script_args, training_args, explicit)

    assert info["global_step"] == 1 and info["resumed_from"] is None
    assert info["prompts"]["used"] == 4
    assert training_args.use_cpu and not training_args.bf16
    logged = info["last_rewards"]
    # a random model writes no code: every completion scores each reward's minimum
    assert logged["rewards/refinement_reward/mean"] == pytest.approx(-5.0)
    assert logged["rewards/explanation_reward/mean"] == pytest.approx(-35 / 3)
    assert logged["rewards/outcome_explanation_reward/mean"] == pytest.approx(-5.0)
    assert logged["reward"] == pytest.approx(-5.0 - 0.5 * 35 / 3 - 0.5 * 5.0)
    assert (output / "checkpoint-1").is_dir()
    assert (output / "adapter_config.json").is_file()
    saved = json.loads((output / "ledex-run.json").read_text())
    assert saved["stage"] == "rl" and saved["adapter"] is True
    assert saved["rewards"] == {"refinement": 1.0, "explanation": 0.5, "outcome_explanation": 0.5}

    # an interrupted run continues from its last checkpoint
    script_args, training_args, explicit = rl.parse_args([*args, "--max_steps", "2"])
    info = rl.run(script_args, training_args, explicit)
    assert info["resumed_from"] == str(output / "checkpoint-1")
    assert info["global_step"] == 2
    assert (output / "checkpoint-2").is_dir()


def test_grpo_on_smollm2_moves_the_adapter(
    collect_dir, smollm2_path, tmp_path, monkeypatch
) -> None:
    """A real instruct model writes real fixes: rewards differ within the group, the LoRA moves."""
    import torch

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = base_args(
        collect_dir,
        str(smollm2_path),
        tmp_path / "rl",
        "--max_prompts", "1",
        "--max_completion_length", "48",
        "--max_steps", "1",
        "--temperature", "1.0",
        "--beta", "0.0",
        "--learning_rate", "1e-3",
    )  # fmt: skip
    script_args, training_args, explicit = rl.parse_args(args)
    prepared = rl.build_trainer(script_args, training_args, explicit)
    trainer = prepared.trainer
    lora_b = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n}
    assert lora_b and all(float(p.abs().sum()) == 0 for p in lora_b.values())  # LoRA starts at zero
    trainer.train()

    [logged] = [entry for entry in trainer.state.log_history if "reward" in entry]
    assert -5.0 <= logged["rewards/refinement_reward/mean"] <= 5.0
    assert -35 / 3 <= logged["rewards/explanation_reward/mean"] <= 5.0
    assert logged["refinement/parsed"] > 0  # it wrote code that parse_reply could read
    assert logged["reward_std"] > 0  # so the advantages, and the policy gradient, are not zero
    moved = [
        n
        for n, p in trainer.model.named_parameters()
        if n in lora_b and not torch.equal(p, lora_b[n])
    ]
    assert len(moved) == len(lora_b)
