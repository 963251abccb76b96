"""`ledex-train sft`: real optimisation steps on a tiny model, the loss mask, resuming, bad input."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from tests.trainer.conftest import make_trajectory
from trainer import chat_data, modeling, sft
from trainer.records import append_jsonl


def _args(data: Path, model: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--data", str(data), "--model", str(model), "--output_dir", str(out),
        "--logging_steps", "1", "--save_steps", "1000", "--max_length", "512",
        "--gradient_checkpointing", "false", "--seed", "0", *extra,
    ]  # fmt: skip


def _build(argv: list[str]):
    script_args, training_args, explicit = sft.parse_args(argv)
    return sft.build_trainer(script_args, training_args, explicit)


def test_examples_are_the_served_dialogue_with_the_answer_as_completion(trajectories_file):
    examples, counts = chat_data.load_examples(trajectories_file)
    assert counts == {"records": 5, "verified": 4, "used": 4}  # the failed trajectory is left out
    prompt, completion = examples[0]["prompt"], examples[0]["completion"]
    assert [m["role"] for m in prompt] == ["user", "assistant", "user"]
    assert "sum(xs[1:])" in prompt[1]["content"]  # the wrong code is context...
    assert [m["role"] for m in completion] == ["assistant"]
    assert completion[0]["content"].startswith("The slice xs[1:] skips")
    assert "return sum(xs)\n```" in completion[0]["content"]  # ...the fix is the target


def test_loss_is_only_on_the_final_answer_never_on_the_wrong_code(trajectories_file, tiny_model_dir, tmp_path):
    prepared = _build(_args(trajectories_file, tiny_model_dir, tmp_path / "run", "--max_steps", "1"))
    trainer = prepared.trainer
    tokenizer = trainer.processing_class
    batch = next(iter(trainer.get_train_dataloader()))
    assert len(batch["input_ids"]) == 4
    for ids, labels in zip(batch["input_ids"].tolist(), batch["labels"].tolist(), strict=True):
        trained = [t for t, label in zip(ids, labels, strict=True) if label != -100]
        assert trained == [label for label in labels if label != -100]  # labels are the tokens
        first = next(i for i, label in enumerate(labels) if label != -100)
        # every trained token comes after the prompt, as one contiguous block up to the padding
        assert all(label != -100 for label, t in zip(labels[first:], ids[first:], strict=True)
                   if t != tokenizer.pad_token_id or label != -100)
        answer = tokenizer.decode(trained)
        context = tokenizer.decode(ids[:first])
        assert answer.startswith("The slice xs[1:] skips the first element")
        assert "return sum(xs)\n```<|im_end|>" in answer
        assert "return sum(xs[1:])" not in answer  # no unmasked token inside the wrong code
        assert "Write a function" not in answer and "AssertionError" not in answer
        assert "return sum(xs[1:])" in context and "AssertionError" in context
        assert context.endswith("<|im_start|>assistant\n")


def test_lora_steps_lower_the_loss_on_a_repeated_set(trajectories_file, tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    argv = _args(trajectories_file, tiny_model_dir, out, "--max_steps", "6", "--learning_rate", "2e-2",
                 "--per_device_train_batch_size", "2", "--warmup_steps", "0", "--lr_scheduler_type", "constant",
                 "--save_steps", "6")
    assert sft.main(argv) == 0
    info = json.loads((out / sft.RUN_INFO).read_text())
    assert info["adapter"] is True and info["global_step"] == 6
    assert info["examples"]["used"] == 4
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert len(losses) == 6
    assert losses[-1] < losses[0] - 2.0, losses  # measured: 11.9 -> 3.9
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert set(adapter["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_full_finetuning_trains_every_weight(trajectories_file, tiny_model_dir, tmp_path):
    prepared = _build(_args(trajectories_file, tiny_model_dir, tmp_path / "run", "--full_finetune",
                            "--max_steps", "1", "--per_device_train_batch_size", "1"))
    model = prepared.trainer.model
    assert all(p.requires_grad for p in model.parameters())
    assert prepared.trainer.args.learning_rate == 2e-5  # the paper's rate for full fine-tuning
    prepared.trainer.train()
    losses = [e["loss"] for e in prepared.trainer.state.log_history if "loss" in e]
    assert len(losses) == 1


def test_the_cpu_precision_is_the_faster_one_unless_given(monkeypatch):
    for has_bf16 in (True, False):
        monkeypatch.setattr(modeling, "cpu_trains_faster_in_bf16", lambda value=has_bf16: value)
        cpu = ["--data", "x", "--use_cpu", "true"]  # the same on a machine with a GPU
        assert sft.parse_args(cpu)[1].bf16 is has_bf16
        for given in ("true", "false"):
            assert sft.parse_args([*cpu, "--bf16", given])[1].bf16 is (given == "true")
        assert sft.parse_args([*cpu, "--fp16", "true"])[1].bf16 is False  # never both


def test_paper_defaults_and_scaling_to_small_data(trajectories_file, tiny_model_dir, tmp_path):
    script_args, config, explicit = sft.parse_args(["--data", str(trajectories_file)])
    assert (config.num_train_epochs, config.lr_scheduler_type, config.learning_rate) == (2.0, "cosine", 2e-5)
    # no GPU here: bf16 autocast only where the CPU has bf16 instructions
    assert config.use_cpu and config.bf16 == modeling.cpu_trains_faster_in_bf16()
    notes = sft.finalize_config(script_args, config, explicit, n_examples=4)
    assert config.learning_rate == 2e-4  # LoRA, not given explicitly
    assert config.gradient_accumulation_steps == 1 and config.completion_only_loss
    assert any("accumulation" in note for note in notes)
    script_args, config, explicit = sft.parse_args(
        ["--data", "x", "--learning-rate", "3e-5", "--gradient_accumulation_steps=4"]
    )
    sft.finalize_config(script_args, config, explicit, n_examples=4)
    assert (config.learning_rate, config.gradient_accumulation_steps) == (3e-5, 4)


def test_a_yaml_config_file_sets_options(tmp_path):
    config_file = tmp_path / "sft.yaml"
    config_file.write_text("data: runs/collect\nmodel: smollm2-135m\nlora_r: 4\nlearning_rate: 1.0e-4\n")
    script_args, config, explicit = sft.parse_args(["--config", str(config_file), "--lora_r", "8"])
    assert (script_args.data, script_args.model, script_args.lora_r) == (["runs/collect"], "smollm2-135m", 8)
    assert config.learning_rate == 1e-4 and "learning_rate" in explicit


class _Crash(Exception):
    pass


def test_an_interrupted_run_resumes_from_its_last_checkpoint(trajectories_file, tiny_model_dir, tmp_path, capsys):
    from transformers import TrainerCallback

    class CrashAtStep3(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise _Crash("killed")

    out = tmp_path / "run"
    argv = _args(trajectories_file, tiny_model_dir, out, "--max_steps", "4", "--save_steps", "2",
                 "--per_device_train_batch_size", "1")
    prepared = _build(argv)
    prepared.trainer.add_callback(CrashAtStep3())
    with pytest.raises(_Crash):
        prepared.trainer.train()
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]
    capsys.readouterr()

    assert sft.main(argv) == 0
    assert f"resuming from {out / 'checkpoint-2'}" in capsys.readouterr().err
    info = json.loads((out / sft.RUN_INFO).read_text())
    assert info["global_step"] == 4 and info["resumed_from"] == str(out / "checkpoint-2")
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    steps = [entry["step"] for entry in state["log_history"] if "loss" in entry]
    assert steps == [1, 2, 3, 4]  # steps 1-2 from the first run, 3-4 after resuming


def test_bad_input_is_one_clear_line(tmp_path, tiny_model_dir, capsys):
    empty = tmp_path / "empty" / "trajectories.jsonl"
    empty.parent.mkdir()
    empty.write_text("")
    failed = tmp_path / "failed" / "trajectories.jsonl"
    append_jsonl(failed, [make_trajectory(1, passed=False)])
    cases = [
        (["--data", str(tmp_path / "nowhere")], "no training data at"),
        (["--data", str(empty)], "holds no trajectories"),
        (["--data", str(failed)], "none verified"),
        (["--data", str(failed.parent), "--model", str(tmp_path / "missing-model")], "none verified"),
    ]
    for argv, message in cases:
        assert sft.main(argv) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err
    good = tmp_path / "good" / "trajectories.jsonl"
    append_jsonl(good, [make_trajectory(1)])
    for model, message in [
        (str(tmp_path / "missing-model"), "not found"),
        (str(tmp_path / "none.gguf"), "GGUF file not found"),
        ("embedded:nosuchmodel", "unknown embedded model"),
    ]:
        assert sft.main(["--data", str(good), "--model", model, "--output_dir", str(tmp_path / "o")]) == 1
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err


def test_data_parallel_on_two_cpu_processes(trajectories_file, tiny_model_dir, tmp_path):
    """`torchrun --nproc_per_node 2` (gloo on the CPU): each process takes its share of the batch."""
    import os
    import socket
    import subprocess
    import sys

    import psutil

    out = tmp_path / "ddp"
    with socket.socket() as probe:  # a free port: a leftover run on torchrun's default one hangs this
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", port,
        "-m", "trainer.sft",
        *_args(trajectories_file, tiny_model_dir, out, "--max_steps", "2", "--save_steps", "2",
               "--per_device_train_batch_size", "1",
               # a stuck collective fails with gloo's error instead of waiting its default 30 min
               "--ddp_timeout", "120"),
    ]  # fmt: skip
    # one machine: gloo talks over loopback, not over whatever interface the hostname resolves to
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env) as run:  # fmt: skip
        try:
            _, stderr = run.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            # torchrun starts each worker in a session of its own, so killing torchrun's process
            # group misses them and they hold the pipes open: kill the whole tree
            tree = psutil.Process(run.pid)
            for process in [*tree.children(recursive=True), tree]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.kill()
            _, stderr = run.communicate(timeout=60)
            pytest.fail(f"torchrun did not finish in 300 s: {stderr[-3000:]}")
    assert run.returncode == 0, stderr[-3000:]
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    # 4 examples, 1 per process per step, 2 processes: an epoch is 2 steps (it would be 4 alone)
    assert [e["epoch"] for e in state["log_history"] if "loss" in e] == [0.5, 1.0]
    assert stderr.count("ledex-train sft: done") == 1  # only the main process reports
    assert (out / "adapter_model.safetensors").is_file()
    # written by the main process before every process leaves (`sft.finish` exits there)
    assert json.loads((out / sft.RUN_INFO).read_text())["global_step"] == 2


def test_accelerate_configs_are_valid():
    from accelerate.commands.config.config_args import ClusterConfig

    folder = Path(sft.__file__).parent / "accelerate"
    configs = {path.stem: ClusterConfig.from_yaml_file(str(path)) for path in folder.glob("*.yaml")}
    assert set(configs) == {"multi_gpu", "zero2", "zero3"}
    assert configs["zero2"].deepspeed_config["zero_stage"] == 2
    assert configs["zero3"].deepspeed_config["zero_stage"] == 3
    assert configs["multi_gpu"].distributed_type == "MULTI_GPU"


def test_lora_layers_adapts_only_the_last_layers_and_rejects_a_bad_count(tiny_model_dir):
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from trainer import modeling

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    args = modeling.AdaptationArguments(lora_layers=1)
    adapted = get_peft_model(model, modeling.lora_config(args, model))
    trained = {name for name, p in adapted.named_parameters() if p.requires_grad}
    assert trained and all(".layers.1." in name for name in trained)  # the last of 2 layers only
    with pytest.raises(ValueError, match="between 1 and 2"):
        modeling.lora_config(modeling.AdaptationArguments(lora_layers=3), model)


def test_several_data_folders_are_mixed_with_max_examples_from_each(trajectories_file, tmp_path):
    other = tmp_path / "other.jsonl"  # another source: the same records under other keys
    other.write_text(trajectories_file.read_text().replace('"key": "', '"key": "other/'))
    argv = ["--data", str(trajectories_file), str(other), "--max_examples", "1"]
    script_args, _, _ = sft.parse_args(argv)
    assert script_args.data == [str(trajectories_file), str(other)]
    examples, counts = chat_data.load_mixture(script_args.data, max_examples=1)
    assert len(examples) == counts["used"] == 2 and examples[1]["key"].startswith("other/")
    assert counts["records"] == 2 * chat_data.load_examples(other)[1]["records"]
    again, counts = chat_data.load_mixture([trajectories_file, trajectories_file])
    assert len(again) == counts["used"] == len(chat_data.load_examples(trajectories_file)[0])


def test_max_examples_can_cap_each_data_folder_on_its_own(trajectories_file, tmp_path):
    other = tmp_path / "other.jsonl"
    other.write_text(trajectories_file.read_text().replace('"key": "', '"key": "other/'))
    everything = len(chat_data.load_examples(other)[0])
    assert everything > 1  # or the second cap below would not cap anything
    script_args, _, _ = sft.parse_args(["--data", str(trajectories_file), str(other), "--max_examples", "1", "9"])
    assert script_args.max_examples == [1, 9]
    examples, counts = chat_data.load_mixture(script_args.data, max_examples=script_args.max_examples)
    assert counts["used"] == 1 + everything and examples[0]["key"] == chat_data.load_examples(trajectories_file)[0][0]["key"]
    config = tmp_path / "recipe.yaml"  # a YAML recipe may give one number, as before
    config.write_text(f"data: [{trajectories_file}, {other}]\nmax_examples: 1\n")
    assert sft.parse_args(["--config", str(config)])[0].max_examples == [1]
    with pytest.raises(ValueError, match="one number for all of them, or one per folder"):
        sft.parse_args(["--data", str(trajectories_file), str(other), "--max_examples", "1", "2", "3"])
    with pytest.raises(chat_data.DataError, match="3 max_examples for 2 data folders"):
        chat_data.load_mixture([trajectories_file, other], max_examples=[1, 2, 3])
