"""trainer/records.py: resuming never loses a complete record, and one run writes a folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ledex.errors import LedexError
from trainer import records
from trainer.collect import CollectConfig, Collector
from trainer.records import FolderInUse, append_jsonl, finished_keys, one_writer, read_jsonl


def test_a_complete_last_record_without_its_newline_survives_the_next_append(tmp_path: Path):
    """A writer killed between the record and its newline: the record counts as done, so the
    next append must keep it (it used to cut it off, and a resumed run never wrote it again)."""
    path = tmp_path / "trajectories.jsonl"
    path.write_text('{"key": "a"}\n{"key": "b"}')
    assert finished_keys(path) == {"a", "b"}
    append_jsonl(path, [{"key": "c"}])
    assert [r["key"] for r in read_jsonl(path)] == ["a", "b", "c"]
    assert path.read_text() == '{"key": "a"}\n{"key": "b"}\n{"key": "c"}\n'


def test_a_torn_last_record_is_still_cut(tmp_path: Path):
    path = tmp_path / "trajectories.jsonl"
    path.write_text('{"key": "a"}\n{"key": "b", "expl')
    assert finished_keys(path) == {"a"}
    append_jsonl(path, [{"key": "b"}])
    assert path.read_text() == '{"key": "a"}\n{"key": "b"}\n'


def test_one_run_writes_an_output_folder(tmp_path: Path):
    with one_writer(tmp_path, "ledex-train collect"):
        with pytest.raises(FolderInUse) as refused:
            Collector(CollectConfig(output_dir=str(tmp_path))).run([])
        message = str(refused.value)
        assert str(tmp_path) in message and "ledex-train collect, pid" in message
        assert "another --output_dir" in message
        # another process, as a second terminal would be
        other = subprocess.run(
            [sys.executable, "-c", "import sys; from trainer.records import one_writer\n"
             f"with one_writer({str(tmp_path)!r}, 'second'):\n    pass"],
            capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2],
        )  # fmt: skip
        assert other.returncode != 0 and "FolderInUse" in other.stderr
    with one_writer(tmp_path, "after the first one ended"):  # released with the run
        pass


def test_stages_that_run_generated_code_need_bubblewrap_or_the_users_choice(tmp_path: Path):
    """Without a usable bubblewrap, `collect` refuses to start (fail closed) and says how to
    install it or opt in; with LEDEX_SANDBOX=rlimits it goes on."""
    import os

    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}  # no bwrap on it
    env.pop("LEDEX_SANDBOX", None)
    command = [sys.executable, "-m", "trainer.cli", "collect", "--source", "jsonl", "--path",
               str(tmp_path / "none.jsonl"), "--output_dir", str(tmp_path / "out")]  # fmt: skip
    refused = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert refused.returncode == 1
    assert "ledex-train collect runs model-written code" in refused.stderr
    assert "apt install bubblewrap" in refused.stderr and "LEDEX_SANDBOX=rlimits" in refused.stderr
    chosen = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**env, "LEDEX_SANDBOX": "rlimits"})  # fmt: skip
    assert "runs model-written code" not in chosen.stderr


def test_snapshots_are_written_when_due_at_the_end_and_on_ctrl_c_and_seed_a_fresh_folder(tmp_path: Path):
    out, data = tmp_path / "run", tmp_path / "data"
    append_jsonl(out / "records.jsonl", [{"key": "a"}])
    tables: list[Path] = []
    snapshots = records.Snapshots(out, data, ["records.jsonl", "done.jsonl"], also=tables.append)
    snapshots.when_due()  # not yet: nothing written
    assert not data.exists()
    with pytest.raises(KeyboardInterrupt), snapshots.on_interrupt():
        append_jsonl(out / "records.jsonl", [{"key": "b"}])
        raise KeyboardInterrupt
    assert tables == [data] and (data / "records.jsonl.gz").exists()
    assert not (data / "done.jsonl.gz").exists()  # a file the run has not written is not made up

    fresh = records.Snapshots(tmp_path / "fresh", data, ["records.jsonl", "done.jsonl"])
    fresh.seed()  # no marker yet: seeded from the snapshot, so nothing of the stopped run is lost
    assert finished_keys(tmp_path / "fresh" / "records.jsonl") == {"a", "b"}
    records.Snapshots(tmp_path / "none", None, ["records.jsonl"]).write()  # no data_dir: no copies
    assert not (tmp_path / "none").exists()


def test_a_background_run_stopped_with_kill_writes_its_snapshot(tmp_path: Path):
    """A long run goes in the background, where the shell ignores SIGINT for it: `kill` (SIGTERM)
    stops it as Ctrl-C does, with its last snapshot."""
    import signal

    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from trainer import records\n"
        "out, data = Path(sys.argv[1]), Path(sys.argv[2])\n"
        "snapshots = records.Snapshots(out, data, ['records.jsonl'])\n"
        "with snapshots.on_interrupt():\n"
        "    records.append_jsonl(out / 'records.jsonl', [{'key': 'a'}])\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(60)\n"
    )
    root = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-c", script, str(tmp_path / "run"), str(tmp_path / "data")]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)}) as run:  # fmt: skip
        assert run.stdout.readline().strip() == "ready"
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=30)
    assert run.returncode != 0 and "KeyboardInterrupt" in stderr
    fresh = tmp_path / "fresh"
    records.Snapshots(fresh, tmp_path / "data", ["records.jsonl"]).seed()
    assert finished_keys(fresh / "records.jsonl") == {"a"}


def test_a_snapshot_never_drops_a_record_its_copy_holds(tmp_path: Path):
    """An old output folder resumed beside a snapshot that grew in another folder is refused at
    once (and any snapshot from it too), naming both; a torn last line is no record."""
    names = ["records.jsonl", "done.jsonl"]
    old, grown, data = tmp_path / "old", tmp_path / "grown", tmp_path / "data"
    for folder, keys in ((old, ["a"]), (grown, ["a", "b"])):
        append_jsonl(folder / "records.jsonl", [{"key": k} for k in keys])
        append_jsonl(folder / "done.jsonl", [{"key": "p"}])
    records.Snapshots(grown, data, names).write()
    before = (data / "records.jsonl.gz").read_bytes()

    stale = records.Snapshots(old, data, names)
    with pytest.raises(LedexError, match=r"records\.jsonl\.gz holds 1 record\(s\) that .*old.* lacks"):
        stale.seed()
    with pytest.raises(LedexError, match="fresh output folder"):
        stale.write()
    assert (data / "records.jsonl.gz").read_bytes() == before  # nothing dropped

    with (grown / "records.jsonl").open("a") as torn:  # a kill mid-write, copied as it is
        torn.write('{"key": "c"')
    records.Snapshots(grown, data, names).write()
    (grown / "records.jsonl").write_text('{"key": "a"}\n{"key": "b"}\n')  # the next append cuts it
    records.Snapshots(grown, data, names).seed()  # the torn line was no record: nothing lacks
    (data / "records.jsonl.gz").write_text("version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(LedexError, match=r"records\.jsonl\.gz is not a readable gzip file"):
        records.Snapshots(grown, data, names).seed()
