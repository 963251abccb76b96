"""The trainer's data on disk: one JSON object per line, append-only, resumable.

`collect` writes two files into its output folder:

- `samples.jsonl`: one `Sample` per unique sampled solution (correct and wrong), with its verdict;
- `trajectories.jsonl`: one `Trajectory` per teacher reply to a wrong solution: the explanation, the
  refinement, and what running the refinement showed. Successes and failures are both kept: SFT
  trains on the verified ones, RL uses the verified ones as references and all of them as prompts.

Every record has a `key` that is unique within its file; a rerun skips keys that are already there.
`read_jsonl` tolerates a torn last line (a run killed mid-write) and reports a corrupt line in the
middle with its file and line number instead of losing the rest of the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import gzip
import json
import os
import signal
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ledex.errors import LedexError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

SAMPLES_FILE = "samples.jsonl"
TRAJECTORIES_FILE = "trajectories.jsonl"
WRITER_LOCK = ".writer.lock"  # held by the run writing the folder (one_writer)
SCHEMA_VERSION = 1


class CorruptRecordWarning(UserWarning):
    """A line of a JSONL file could not be read; it was skipped, the rest was kept."""


@dataclass(frozen=True)
class Sample:
    """A solution sampled for a problem and what running its tests showed."""

    key: str  # "{problem_id}/{code_sha[:16]}": one record per unique normalised solution
    problem_id: str
    source: str  # humaneval | mbpp | apps | codecontests | jsonl
    code: str
    passed: list[bool]  # per test, in the problem's test order
    status: str  # the sandbox status: passed, failed, error, timeout, ...
    feedback: str  # "" when all tests passed; else the LeDex feedback text
    model: str  # the model spec string that sampled it
    sampling: dict[str, Any] = field(default_factory=dict)  # temperature, max_tokens, n, shots...
    seed: int | None = None
    schema: int = SCHEMA_VERSION

    @property
    def correct(self) -> bool:
        return bool(self.passed) and all(self.passed)


@dataclass(frozen=True)
class Trajectory:
    """One teacher reply to a wrong solution: explanation + refinement, and its verdict.

    `task`, `wrong_code`, `feedback` and `style` rebuild the exact prompt with
    `ledex.dialogue.build_conversation`; `explanation` and `refinement` rebuild the training target
    with `ledex.dialogue.format_reply`. `reply` keeps the raw text for auditing.
    """

    key: str  # "{sample key}/{style}/{index}"
    problem_id: str
    source: str
    task: str  # turn 1, as `ledex.dialogue.problem_task` rendered it
    wrong_code: str
    feedback: str
    style: str  # "explain+refine" | "refine"
    reply: str
    explanation: str
    refinement: str  # the parsed code; "" when the reply had no usable code
    passed: list[bool]  # per test; all False when the refinement could not run
    status: str
    teacher: str  # the model spec string of the teacher
    sampling: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    parse_error: str = ""  # why the reply had no usable code, if it had none
    hint: str = ""  # what a rationalisation pass told the teacher (never part of `task`)
    schema: int = SCHEMA_VERSION

    @property
    def pass_fraction(self) -> float:
        return sum(self.passed) / len(self.passed) if self.passed else 0.0

    @property
    def verified(self) -> bool:
        return bool(self.passed) and all(self.passed)


R = TypeVar("R", bound="DataclassInstance")  # a record: Sample, Trajectory, or a stage's own (eval's)


def to_json(record: Any) -> str:
    """One line for a record dataclass, or for a plain mapping (a stage's own marks)."""
    data = dict(record) if isinstance(record, Mapping) else asdict(record)
    if isinstance(record, Trajectory):  # derived, but handy for people reading the file with jq
        data["pass_fraction"] = record.pass_fraction
        data["verified"] = record.verified
    return json.dumps(data, ensure_ascii=False)


def from_dict(cls: type[R], data: Mapping[str, Any]) -> R:
    """Build a record, ignoring derived and unknown fields (newer writers may add some)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The objects of a JSONL file (or a gzip-compressed `.jsonl.gz`); a missing file is empty.

    A torn last line (no newline at the end, not valid JSON) is what a killed writer leaves: it is
    skipped silently and the next `append_jsonl` starts on a fresh line. Any other unreadable line
    is skipped with a `CorruptRecordWarning` naming the file and line.
    """
    path = Path(path)
    if not path.exists():
        return
    with path.open("rb") as handle:
        data = handle.read()
    if path.suffix == ".gz":  # a committed snapshot (trainer/datasets)
        data = gzip.decompress(data)
    lines = data.split(b"\n")
    last = len(lines) - 1  # after the final "\n" split gives b"" (a complete file)
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
            if not isinstance(value, dict):
                raise ValueError("not a JSON object")
        except ValueError as error:
            if number - 1 == last:
                continue  # torn tail
            warnings.warn(
                f"{path}:{number}: skipped an unreadable record ({error})",
                CorruptRecordWarning,
                stacklevel=2,
            )
            continue
        yield value


def read_records(path: str | os.PathLike[str], cls: type[R]) -> Iterator[R]:
    for data in read_jsonl(path):
        yield from_dict(cls, data)


def finished_keys(path: str | os.PathLike[str]) -> set[str]:
    """The keys already written: a rerun skips them."""
    return {str(data["key"]) for data in read_jsonl(path) if "key" in data}


def append_jsonl(path: str | os.PathLike[str], records: Iterable[Any]) -> int:
    """Append one batch and make it durable (fsync), so a kill loses at most the batch in flight.

    If the file ends in a torn line (a killed writer), that line is cut off first: it was never a
    complete record, and leaving it would put a corrupt line in the middle of the file. A last line
    that is a complete record without its newline (`read_jsonl` counts it as done) gets the newline
    instead: cutting it would lose it for good.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [to_json(record) + "\n" for record in records]
    if not lines:
        return 0
    with path.open("ab+") as handle:
        _cut_torn_tail(handle)
        handle.write("".join(lines).encode())
        handle.flush()
        os.fsync(handle.fileno())
    return len(lines)


def _cut_torn_tail(handle: Any) -> None:
    size = handle.seek(0, os.SEEK_END)
    if size == 0:
        return
    handle.seek(-1, os.SEEK_END)
    if handle.read(1) == b"\n":
        return
    block = 1 << 16
    end = size
    line_start = 0
    while end > 0:  # find the last newline, reading backwards
        start = max(0, end - block)
        handle.seek(start)
        chunk = handle.read(end - start)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            line_start = start + cut + 1
            break
        end = start
    handle.seek(line_start)
    if _is_record(handle.read(size - line_start)):
        handle.seek(0, os.SEEK_END)
        handle.write(b"\n")  # complete: keep it, on a line of its own
    else:
        handle.truncate(line_start)
    handle.seek(0, os.SEEK_END)


def _is_record(line: bytes) -> bool:
    """Is `line` what read_jsonl yields (a JSON object)?"""
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


class FolderInUse(LedexError):
    """Another run is writing to the same output folder."""


@contextlib.contextmanager
def one_writer(folder: str | os.PathLike[str], command: str) -> Iterator[None]:
    """Hold the output folder for this run: two runs appending to the same files would interleave
    and duplicate records. Raises FolderInUse, naming the other run, when one holds it already
    (the lock goes with the process: a killed run never leaves it held)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / WRITER_LOCK, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise FolderInUse(
                f"{folder} is being written by another run ({holder}); wait for it to finish, or"
                " choose another --output_dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{command}, pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def claim_settings(
    path: str | os.PathLike[str],
    settings: Mapping[str, Any],
    defaults: Mapping[str, Any] | None = None,
) -> None:
    """Write the settings that shape a run's records to `path` once; a rerun with other values is
    refused (a LedexError naming them), so records of different settings never share a folder.
    `defaults` are the values of settings newer than some folders: a folder without one held it."""
    path = Path(path)
    if path.exists():
        try:
            theirs = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise LedexError(f"{path} is not valid JSON ({error}); fix or remove it") from None
        theirs = {**(defaults or {}), **theirs}
        changed = [name for name in settings if name in theirs and theirs[name] != settings[name]]
        if changed:
            detail = ", ".join(f"{n}={theirs[n]!r} (now {settings[n]!r})" for n in changed)
            raise LedexError(
                f"{path.parent} holds a run with other settings: {detail}; resume with the same "
                "settings or choose another --output_dir"
            )
        return
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(dict(settings), indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)


# --- committed snapshots (trainer/datasets) ------------------------------------------------------

SNAPSHOT_EVERY_S = 600.0  # how often a long collection run snapshots its folder for a commit


class Snapshots:
    """A long run's copies of its output folder in `data_dir`, to commit (nothing without one):
    the folder is seeded from them before the run, and they are written when due (every
    `SNAPSHOT_EVERY_S`), at the end, and when the run is stopped with Ctrl-C or `kill` (not with
    `kill -9`), so that no finished record stays out of a commit. `names` are the files a snapshot
    holds, the folder's marker (what says "this is written") last; `also` writes what else it
    holds, from `data_dir`."""

    def __init__(
        self,
        out: Path,
        data_dir: str | os.PathLike[str] | None,
        names: Sequence[str],
        also: Callable[[Path], None] | None = None,
    ) -> None:
        self.out, self.names, self.also = out, tuple(names), also
        self.data_dir = Path(data_dir) if data_dir else None
        self._last = time.monotonic()

    def seed(self) -> None:
        """Seed the output folder from the snapshot, while the folder has no marker yet. A folder
        that has one resumes from what it holds, so it must hold every record of the snapshot:
        refused now, before hours of work, rather than at its first snapshot."""
        if self.data_dir is None:
            return
        if (self.out / self.names[-1]).exists():
            check_snapshot_kept(self.out, self.data_dir, self.names)
        else:
            unpack_snapshot(self.data_dir, self.out, self.names)

    def when_due(self) -> None:
        if time.monotonic() - self._last >= SNAPSHOT_EVERY_S:
            self.write()

    def write(self) -> None:
        self._last = time.monotonic()
        if self.data_dir is not None:
            write_snapshot(self.out, self.data_dir, self.names)
            if self.also is not None:
                self.also(self.data_dir)

    @contextlib.contextmanager
    def on_interrupt(self) -> Iterator[None]:
        """Write a snapshot if the block is stopped with Ctrl-C or `kill` (records are appended
        whole, and a torn last line is cut by the next append, so the copy is sound); a snapshot
        that fails then is a warning, and the interrupt goes on."""
        try:
            with _terminate_as_interrupt():
                yield
        except KeyboardInterrupt:
            try:
                self.write()
            except Exception as error:  # noqa: BLE001 - the interrupt matters more
                warnings.warn(f"no snapshot of {self.out} on interrupt: {error}", stacklevel=2)
            raise


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the block as Ctrl-C does. A long run goes in the background (`nohup ... &`),
    where the shell ignores SIGINT for it, so `kill` is how it is stopped; Python's default for
    SIGTERM would end it without its last snapshot. Signals reach the main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def check_snapshot_kept(out: Path, data_dir: Path, names: Iterable[str]) -> None:
    """Refuse to go on when `data_dir` holds records that the run's folder does not (an old folder
    resumed beside a snapshot that grew elsewhere): the next snapshot would drop them. Records
    are compared as whole lines; a torn last line (no newline) counts as no record."""
    for name in names:
        snapshot = data_dir / f"{name}.gz"
        if not name.endswith(".jsonl") or not snapshot.exists():
            continue
        held = _whole_lines(_unpacked(snapshot))
        source = out / name
        missing = held - (_whole_lines(source.read_bytes()) if source.exists() else set())
        if missing:
            raise LedexError(
                f"{snapshot} holds {len(missing)} record(s) that {source} lacks, and a snapshot "
                f"from {out} would drop them; resume in a fresh output folder (it is seeded from "
                "the snapshot; records written here since the last snapshot are not in it) or "
                "give another --data_dir"
            )


def _unpacked(snapshot: Path) -> bytes:
    try:
        return gzip.decompress(snapshot.read_bytes())
    except (OSError, EOFError, zlib.error) as error:  # truncated, a merge conflict, an LFS pointer
        raise LedexError(f"{snapshot} is not a readable gzip file ({error}); restore it from git") from error


def _whole_lines(data: bytes) -> set[bytes]:
    lines = data.split(b"\n")
    return {line for line in lines[:-1] if line.strip()}  # the last piece has no newline


def write_snapshot(out: Path, data_dir: Path, names: Iterable[str]) -> None:
    """Copies of a run's files in `data_dir` to commit: JSONL files gzip-compressed (`NAME.gz`,
    reproducible: no timestamp in the header), others as they are; each written atomically. It
    never drops a record that the copy already holds (`check_snapshot_kept`)."""
    names = tuple(names)
    check_snapshot_kept(out, data_dir, names)
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        source = out / name
        if not source.exists():
            continue
        packed = name.endswith(".jsonl")
        final = data_dir / (f"{name}.gz" if packed else name)
        partial = final.with_name(final.name + ".partial")
        data = source.read_bytes()
        partial.write_bytes(gzip.compress(data, mtime=0) if packed else data)
        partial.replace(final)


def unpack_snapshot(data_dir: Path, out: Path, names: Iterable[str]) -> None:
    """Seed a run's output folder from a committed snapshot, so that the run resumes from it.

    Call it only while the folder's marker file (what says "this is written") is missing, and name
    the marker last: a kill mid-way then leaves no marker and the next run seeds again. The
    snapshot's JSONL files replace what is there (a partial file written before the marker would
    otherwise shadow the committed records, and the next snapshot would overwrite them with it);
    a settings file already there is kept."""
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        packed = name.endswith(".jsonl")
        source = data_dir / (f"{name}.gz" if packed else name)
        if not source.exists() or (not packed and (out / name).exists()):
            continue
        data = _unpacked(source) if packed else source.read_bytes()
        partial = out / f"{name}.partial"
        partial.write_bytes(data)
        partial.replace(out / name)
