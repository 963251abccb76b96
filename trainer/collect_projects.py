"""`ledex-train collect_projects`: verified repairs of buggy projects, in the editor's exact prompt.

    ledex-train collect_projects --teacher embedded --output_dir runs/bugs-train
    ledex-train collect_projects --limit 20 --per_project 1 --refinements 2      # a quick look

`collect` teaches the model LeDex's benchmark prompt (a problem statement and its asserts). The
editor sends another: the project function under repair, the failing pytest test and pytest's
report (`ledex.project_repair`). A model trained only on the first is out of distribution on the
second, so this stage collects data in the second shape, through the same code path as `ledex fix`
and the language server:

1. Source projects (MBPP's train split as pytest projects, `trainer.buggy_projects`; `--shapes`
   rewrites them as methods, coroutines, a helper in another module or an expression moved into
   a helper, `trainer.project_shapes`) get one injected bug each (`per_project` of them), kept
   only when some test catches it; `--bugs helpers` puts it only in functions the tests never
   call by name.
2. Each buggy project is written to a folder and its tests are run (`ledex.sandbox.run_pytest`);
   for its first failing test, the fix workflow's task (`ledex.fix.task_for`: verified against the
   other failing tests of the same function too) and `conversation_parts` build the prompt,
   and the repair loop (`ledex.repair.repair`, one round of `refinements` candidates, stopping at the
   first verified one) asks the teacher, cuts each reply at the end of its code block and verifies
   each candidate with `ProjectVerifier` (the failing test and the tests that passed before).
3. Where the teacher fails, `--hint` runs a rationalisation pass: the teacher is told which line is
   wrong (`--hint_shows fix`: shown the diff to the correct code; `--no_plain_pass`: only this
   pass), its replies are still verified by the tests, and the record keeps the prompt without the
   hint (`Trajectory.hint` says what the teacher was shown).
4. `--teacher gold` answers with the known fix and an explanation written from the mutation
   (the fix alone in the `refine` style; `trainer/gold.py`), through the same loop and test runs;
   `--gold_change span` quotes only the tokens that differ after the wrong line.

Every candidate is written as a `Trajectory` (verified or not; duplicates of an earlier candidate are
not), whose `task`, `wrong_code` and `feedback` rebuild the exact conversation the editor sends.
`bugs.jsonl` marks a bug done after its trajectories are written, so a killed run resumes where it
was. `--data_dir` keeps gzip snapshots of both files there (to commit) and seeds an empty output
folder from them, so a fresh machine resumes from committed data.
"""

from __future__ import annotations

import difflib
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ledex import dialogue
from ledex.errors import LedexError
from ledex.fix import task_for
from ledex.models.base import Backend
from ledex.project_repair import ProjectTask, ProjectVerifier, conversation_parts, prompt_budget
from ledex.repair import RepairConfig, RepairResult, repair
from ledex.sandbox import isolation
from ledex.sandbox.pytest_runner import run_pytest
from trainer.buggy_projects import (
    GENERATOR_VERSION,
    BuggyProject,
    SourceProject,
    check_bug_place,
    generate,
    mbpp_projects,
)
from trainer.gold import CHANGES as GOLD_CHANGES
from trainer.gold import TEACHER as TEACHER_GOLD
from trainer.gold import GoldTeacher
from trainer.project_shapes import SHAPES, check_shapes
from trainer.records import (
    TRAJECTORIES_FILE,
    Snapshots,
    Trajectory,
    append_jsonl,
    claim_settings,
    finished_keys,
    one_writer,
    read_jsonl,
)

BUGS_FILE = "bugs.jsonl"  # one line per bug whose trajectories are all written
SOURCES_FILE = "sources.jsonl"  # one line per source project whose bugs are all done
CONFIG_FILE = "config.json"
TABLE_JSON = "table.json"
TABLE_MD = "table.md"
SOURCE_NAME = "mbpp-bugs"
UNPARSED = "unparsed"
# what a snapshot holds; BUGS_FILE, the marker `_claim_folder` checks, comes last (Snapshots)
_SNAPSHOT_FILES = (CONFIG_FILE, TRAJECTORIES_FILE, SOURCES_FILE, BUGS_FILE)
HINTS = ("line", "fix")
_RECORD_SETTINGS = (
    "split",
    "per_project",
    "tries",
    "teacher",
    "refinements",
    "temperature",
    "max_tokens",
    "seed",
    "styles",
    "hint",
    "hint_shows",
    "plain_pass",
    "shapes",
    "gold_change",
    "bugs",
)


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class ProjectCollectConfig:
    """Options of `ledex-train collect_projects` (flags or a YAML file via --config)."""

    split: str = field(
        default="train",
        metadata=_help(
            "source projects: 'train' (MBPP train, 601-974); the held-out splits are refused"
        ),
    )
    path: str | None = field(
        default=None,
        metadata=_help("local copy of MBPP (default: $LEDEX_MBPP_PATH, ../shared/data/mbpp)"),
    )
    limit: int | None = field(default=None, metadata=_help("use only the first N source projects"))
    shapes: list[str] = field(
        default_factory=lambda: ["function"],
        metadata=_help(
            "shapes of the source projects, one per problem: of those that fit it, the one used least "
            "so far (trainer/project_shapes.py): "
            f"{', '.join(SHAPES)}"
        ),
    )
    per_project: int = field(default=2, metadata=_help("bugs injected per source project"))
    bugs: str = field(
        default="anywhere",
        metadata=_help(
            "where a bug may be (trainer/buggy_projects.py): 'anywhere' or 'helpers' (only in "
            "functions the tests never call by name; with the extracted-helper shape any problem "
            "has one)"
        ),
    )
    tries: int = field(default=6, metadata=_help("mutants run per source project to find them"))
    teacher: str = field(
        default="embedded",
        metadata=_help(
            "model spec that explains and repairs (default: the embedded 1.5B), or 'gold': the "
            "known fix with an explanation written from the mutation (trainer/gold.py)"
        ),
    )
    gold_change: str = field(
        default="line",
        metadata=_help(
            "how the gold teacher's explanation quotes the change: 'line' (the wrong line and the "
            "right one) or 'span' (the wrong line, then only the tokens that differ)"
        ),
    )
    refinements: int = field(
        default=4,
        metadata=_help("candidates per bug and style (the loop stops at the first verified one)"),
    )
    temperature: float = field(default=0.8, metadata=_help("teacher temperature"))
    max_tokens: int = field(default=1024, metadata=_help("token budget of every reply"))
    styles: list[str] = field(
        default_factory=lambda: ["explain+refine"],
        metadata=_help("dialogue styles: explain+refine and/or refine"),
    )
    hint: bool = field(
        default=True,
        metadata=_help("rationalisation pass for bugs the teacher could not fix (--no_hint: off)"),
    )
    hint_shows: str = field(
        default="line",
        metadata=_help(
            "what the rationalisation pass shows the teacher: 'line' (where the bug is) or 'fix' "
            "(the diff from the buggy function to the correct one)"
        ),
    )
    plain_pass: bool = field(
        default=True,
        metadata=_help(
            "ask the teacher without a hint first (--no_plain_pass: the rationalisation pass "
            "alone, a cheaper dataset whose replies are still verified by the tests)"
        ),
    )
    seed: int = field(default=0, metadata=_help("generator and sampling seed"))
    timeout: float = field(default=30.0, metadata=_help("seconds per pytest run"))
    output_dir: str = field(
        default="runs/bugs-train",
        metadata=_help("folder for bugs.jsonl, trajectories.jsonl and the table"),
    )
    data_dir: str | None = field(
        default=None,
        metadata=_help("folder for gzip snapshots to commit; seeds an empty output_dir"),
    )
    n_ctx: int | None = field(default=None, metadata=_help("context window of an embedded model"))
    n_threads: int | None = field(default=None, metadata=_help("CPU threads of an embedded model"))
    progress: bool = field(default=True, metadata=_help("show a progress bar"))

    def check(self) -> None:
        if self.split != "train":
            raise ValueError(
                "--split must be 'train': the held-out splits are for the benchmark suite only"
            )
        if min(self.per_project, self.tries, self.refinements) < 1:
            raise ValueError("--per_project, --tries and --refinements must be at least 1")
        if self.hint_shows not in HINTS:
            raise ValueError(f"--hint_shows must be one of {', '.join(HINTS)}, got {self.hint_shows!r}")
        if self.gold_change not in GOLD_CHANGES:
            raise ValueError(
                f"--gold_change must be one of {', '.join(GOLD_CHANGES)}, got {self.gold_change!r}"
            )
        if self.gold_change != "line" and self.teacher != TEACHER_GOLD:
            raise ValueError("--gold_change is how the gold teacher explains: it needs --teacher gold")
        if not (self.plain_pass or self.hint):
            raise ValueError("--no_plain_pass needs the hint pass: nothing would ask the teacher")
        check_shapes(self.shapes)
        check_bug_place(self.bugs)
        bad = [style for style in self.styles if style not in dialogue.STYLES]
        if bad or not self.styles:
            raise ValueError(
                f"--styles must be among {', '.join(dialogue.STYLES)}, got {bad or 'none'}"
            )


@dataclass
class Counters:
    wall: float = 0.0
    generation: float = 0.0  # teacher decoding
    verification: float = 0.0  # candidate verification (patching + pytest)
    bug_search: float = 0.0  # running mutants' tests to find bugs, and each bug's first run
    bugs: int = 0
    trajectories: int = 0
    verified: int = 0

    def as_dict(self) -> dict[str, float]:
        hours = self.wall / 3600
        return {
            **{k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()},
            "verification_share": round(self.verification / self.wall, 4) if self.wall else 0.0,
            "bug_search_share": round(self.bug_search / self.wall, 4) if self.wall else 0.0,
            "verified_per_hour": round(self.verified / hours, 1) if hours else 0.0,
        }


class ProjectCollector:
    def __init__(self, config: ProjectCollectConfig, backend: Backend | None = None) -> None:
        self.config = config
        self.out = Path(config.output_dir)
        self.counters = Counters()
        self._backend = backend
        self.snapshots = Snapshots(self.out, config.data_dir, _SNAPSHOT_FILES, also=self._write_table_md)
        self._kept: Counter[str] = Counter()  # bugs kept so far, by operator

    def run(self, sources: Sequence[SourceProject]) -> dict[str, Any]:
        with one_writer(self.out, "ledex-train collect_projects"):  # two runs would interleave
            return self._run(sources)

    def _run(self, sources: Sequence[SourceProject]) -> dict[str, Any]:
        started = time.perf_counter()
        self._claim_folder()
        done_sources = finished_keys(self.out / SOURCES_FILE)
        done_bugs = finished_keys(self.out / BUGS_FILE)
        # The generator balances operators by what was kept before; a resumed run counts the bugs
        # of the sources it finished, as an uninterrupted run would have at this point.
        origins = {str(d.get("origin")) for d in read_jsonl(self.out / SOURCES_FILE)}
        self._kept = Counter(
            str(b["operator"])
            for b in read_jsonl(self.out / BUGS_FILE)
            if b.get("origin") in origins
        )
        written = finished_keys(self.out / TRAJECTORIES_FILE)
        todo = [s for s in sources if s.name not in done_sources]
        try:
            with (
                self.snapshots.on_interrupt(),
                _progress(len(sources), len(sources) - len(todo), self.config.progress) as bar,
                tempfile.TemporaryDirectory(prefix="ledex-collect-projects-") as scratch,
            ):
                for source in todo:
                    for bug in self._bugs(source):
                        if bug.name not in done_bugs:
                            self._collect(bug, Path(scratch), written)
                            done_bugs.add(bug.name)
                    append_jsonl(
                        self.out / SOURCES_FILE, [{"key": source.name, "origin": source.origin}]
                    )
                    bar.set_postfix(
                        {"bugs": self.counters.bugs, "verified": self.counters.verified},
                        refresh=False,
                    )
                    bar.update(1)
                    self.snapshots.when_due()
        finally:
            self.counters.wall = time.perf_counter() - started
            if self._backend is not None:
                self._backend.close()
        self.snapshots.write()
        table = table_1(self.out, self.config.styles)
        table["timing"] = self.counters.as_dict()
        table["settings"] = asdict(self.config)
        table["sandbox"] = isolation.status().to_dict()  # what "verified" was checked in
        (self.out / TABLE_JSON).write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
        (self.out / TABLE_MD).write_text(table_markdown(table), encoding="utf-8")
        return table

    def _bugs(self, source: SourceProject) -> Iterator[BuggyProject]:
        cfg = self.config
        started = time.perf_counter()
        for bug in generate(
            [source],
            per_project=cfg.per_project,
            tries=cfg.tries,
            seed=cfg.seed,
            timeout=cfg.timeout,
            kept=self._kept,
            bugs=cfg.bugs,
        ):
            self.counters.bug_search += time.perf_counter() - started
            yield bug
            started = time.perf_counter()
        self.counters.bug_search += time.perf_counter() - started

    def _collect(self, bug: BuggyProject, scratch: Path, written: set[str]) -> None:
        """The editor's repair of one bug's first failing test, every candidate recorded."""
        cfg = self.config
        folder = bug.write(scratch / bug.name)
        try:
            started = time.perf_counter()
            run = run_pytest(folder, ["tests"], python=sys.executable, timeout=cfg.timeout)
            self.counters.bug_search += time.perf_counter() - started
            failing = [o for o in run.outcomes.values() if o.failed]
            task = (
                task_for(folder, run, failing[0], python=sys.executable, timeout=cfg.timeout)
                if failing
                else None
            )
            records: list[Trajectory] = []
            if task is not None and not isinstance(task, str):
                for style in map(dialogue.check_style, cfg.styles):
                    backend = self._teacher(bug, task, style)
                    config = RepairConfig(
                        n=cfg.refinements,
                        rounds=1,
                        style=style,
                        temperature=cfg.temperature,
                        max_tokens=cfg.max_tokens,
                        seed=cfg.seed,
                    )
                    prompt, code, failure = conversation_parts(task, prompt_budget(backend, config))
                    verified = False
                    if cfg.plain_pass:
                        result = self._repair(prompt, code, failure, task, backend, config)
                        records += self._records(bug, style, prompt, code, failure, result, "", written)
                        verified = result.verified
                    if cfg.hint and not verified:
                        hint = hint_for(bug, cfg.hint_shows)
                        result = self._repair(
                            prompt + "\n\n" + hint, code, failure, task, backend, config
                        )
                        records += self._records(
                            bug, style, prompt, code, failure, result, hint, written
                        )
            append_jsonl(self.out / TRAJECTORIES_FILE, records)
            written.update(r.key for r in records)
            self.counters.trajectories += len(records)
            self.counters.verified += sum(r.verified for r in records)
            self.counters.bugs += 1
            append_jsonl(
                self.out / BUGS_FILE, [bug_record(bug, task if not isinstance(task, str) else None)]
            )
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _repair(
        self,
        prompt: str,
        code: str,
        failure: str,
        task: Any,
        backend: Backend,
        config: RepairConfig,
    ) -> RepairResult:
        result = repair(
            prompt,
            code,
            failure,
            verifier=ProjectVerifier(task),
            backend=backend,
            config=config,
            target=task.node_id,
        )
        self.counters.generation += result.generation_seconds
        self.counters.verification += result.verification_seconds
        return result

    def _records(
        self,
        bug: BuggyProject,
        style: str,
        prompt: str,
        code: str,
        failure: str,
        result: RepairResult,
        hint: str,
        written: set[str],
    ) -> list[Trajectory]:
        cfg = self.config
        records = []
        for candidate in result.candidates:
            if candidate.duplicate_of is not None:
                continue
            key = f"{bug.name}/{style}/{'hint/' if hint else ''}{candidate.index}"
            if key in written:
                continue
            verdict = candidate.verdict
            passed = (
                [True] * verdict.passed + [False] * (verdict.total - verdict.passed)
                if verdict
                else [False]
            )
            records.append(
                Trajectory(
                    key=key,
                    problem_id=bug.name,
                    source=SOURCE_NAME,
                    task=prompt,
                    wrong_code=code,
                    feedback=failure,
                    style=style,
                    reply=candidate.reply,
                    explanation=candidate.explanation or "",
                    refinement=candidate.code or "",
                    passed=passed if verdict and verdict.ok else _not_all(passed),
                    status=verdict.status if verdict else UNPARSED,
                    teacher=cfg.teacher,
                    sampling={
                        "n": cfg.refinements,
                        "temperature": cfg.temperature,
                        "max_tokens": cfg.max_tokens,
                    },
                    seed=cfg.seed,
                    parse_error=candidate.parse_error or "",
                    hint=hint,
                )
            )
        return records

    def _teacher(self, bug: BuggyProject, task: ProjectTask, style: dialogue.Style) -> Backend:
        """Who answers this bug's prompt in this style: the gold teacher knows each bug's fix, so it
        is made per bug; a model is loaded once."""
        if self.config.teacher == TEACHER_GOLD and self._backend is None:
            return GoldTeacher(bug, task, style, change=self.config.gold_change)
        return self._model()

    def _model(self) -> Backend:
        if self._backend is None:
            from ledex.models import load_backend

            options = {"n_ctx": self.config.n_ctx, "n_threads": self.config.n_threads}
            self._backend = load_backend(
                self.config.teacher, **{k: v for k, v in options.items() if v is not None}
            )
        return self._backend

    # -- the folder

    def _claim_folder(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.snapshots.seed()
        settings = {n: getattr(self.config, n) for n in _RECORD_SETTINGS}
        claim_settings(
            self.out / CONFIG_FILE,
            {**settings, "generator": GENERATOR_VERSION},
            # folders from before these settings held their defaults
            defaults={
                "shapes": ["function"],
                "hint_shows": "line",
                "plain_pass": True,
                "gold_change": "line",
                "bugs": "anywhere",
            },
        )

    def _write_table_md(self, data_dir: Path) -> None:
        """A snapshot's Table 1, rendered from the run's files."""
        table = table_1(self.out, self.config.styles)
        (data_dir / TABLE_MD).write_text(table_markdown(table), encoding="utf-8")


def hint_for(bug: BuggyProject, shows: str = "line") -> str:
    """What the rationalisation pass tells the teacher: where the bug is ('line'), or the diff from
    the buggy code to the correct code ('fix', STaR's rationalisation: the teacher still has to
    explain the bug and write the repair, and the tests still judge it)."""
    where = f"the bug is in `{bug.mutation.function}` in {bug.file}"
    if shows == "fix":
        # only the lines that differ: a change in several places (a mutable default's signature
        # and its guard) does not show the unchanged lines between them
        diff = "".join(
            f"{line}\n"
            for line in difflib.unified_diff(*bug.changed_lines(), n=0, lineterm="")
            if not line.startswith(("---", "+++", "@@"))
        )
        return (
            f"Hint: {where}; the correct code differs from it by this change:\n```diff\n{diff}```\n"
            "Explain why the test fails as if you had found the bug yourself, then write the fix. "
            "Do not mention this hint or the diff in your answer."
        )
    line = bug.buggy_text.splitlines()[bug.mutation.line - 1].strip()
    return f"Hint: {where}, on the line `{line}`. Do not mention this hint in your answer."


def bug_record(bug: BuggyProject, task: Any) -> dict[str, Any]:
    return {
        "key": bug.name,
        "origin": bug.source.origin,
        "licence": bug.source.licence,
        "operator": bug.mutation.operator,
        "description": bug.mutation.description,
        "file": bug.file,
        "function": bug.mutation.function,
        "failing": list(bug.failing),
        "passing": list(bug.passing),
        "kind": bug.kind,
        "located": None if task is None else task.site.symbol.qualname == bug.mutation.function,
        "repaired_test": None if task is None else task.node_id,
    }


def _not_all(passed: list[bool]) -> list[bool]:
    """A verdict that is not ok never reads as verified, even when its counts say all passed
    (a rejected or errored candidate)."""
    return passed if not all(passed) else [*passed[:-1], False]


def _progress(total: int, initial: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="project",
        desc="collect_projects",
        disable=not enabled,
        file=sys.stderr,
    )


# --- Table 1 -------------------------------------------------------------------------------------


def table_1(out: Path, styles: Sequence[str]) -> dict[str, Any]:
    """Counted from the files: bugs, bugs with a verified repair (without and with the hint),
    trajectories and verified ones per style, bugs per operator."""
    bugs = {str(b["key"]): b for b in read_jsonl(out / BUGS_FILE)}
    plain: set[str] = set()
    hinted: set[str] = set()
    per_style = {style: {"trajectories": 0, "verified": 0} for style in styles}
    for data in read_jsonl(out / TRAJECTORIES_FILE):
        style = data.get("style")
        if style not in per_style:
            continue
        per_style[style]["trajectories"] += 1
        if data.get("verified"):
            per_style[style]["verified"] += 1
            (hinted if data.get("hint") else plain).add(str(data["problem_id"]))
    operators: dict[str, list[int]] = {}
    for key, bug in bugs.items():
        row = operators.setdefault(str(bug["operator"]), [0, 0])
        row[0] += 1
        row[1] += key in plain or key in hinted
    return {
        "sources": len(finished_keys(out / SOURCES_FILE)),
        "bugs": len(bugs),
        "located": sum(1 for b in bugs.values() if b.get("located")),
        "repaired": len(plain & bugs.keys()),
        "repaired_with_hint_only": len((hinted - plain) & bugs.keys()),
        "styles": per_style,
        "operators": {op: {"bugs": n, "repaired": r} for op, (n, r) in sorted(operators.items())},
    }


def table_markdown(table: dict[str, Any]) -> str:
    bugs = table["bugs"] or 1
    lines = [
        "| Source projects | Bugs | Located first | Repaired (verified) | + with the hint only |",
        "|---:|---:|---:|---:|---:|",
        f"| {table['sources']} | {table['bugs']} | {table['located']} | {table['repaired']} "
        f"({100 * table['repaired'] / bugs:.1f}%) | {table['repaired_with_hint_only']} "
        f"({100 * table['repaired_with_hint_only'] / bugs:.1f}%) |",
        "",
        "| Style | Trajectories | Verified |",
        "|---|---:|---:|",
        *(
            f"| {style} | {row['trajectories']} | {row['verified']} |"
            for style, row in table["styles"].items()
        ),
        "",
        "| Operator | Bugs | Repaired |",
        "|---|---:|---:|",
        *(
            f"| {op} | {row['bugs']} | {row['repaired']} |"
            for op, row in table["operators"].items()
        ),
    ]
    if table.get("sandbox"):
        lines += ["", f"Verified in the sandbox: {table['sandbox']['summary']}."]
    timing = table.get("timing")
    if timing:
        lines += [
            "",
            (
                f"This invocation: {timing['wall']:.0f} s wall, {timing['generation']:.0f} s generating, "
                f"{timing['verification']:.0f} s verifying candidates ({100 * timing['verification_share']:.1f}%), "
                f"{timing['bug_search']:.0f} s finding bugs ({100 * timing['bug_search_share']:.1f}%); "
                f"{timing['verified']} verified trajectories, {timing['verified_per_hour']:.1f} per hour."
            ),
        ]
    return "\n".join(lines) + "\n"


# --- the command ---------------------------------------------------------------------------------


def parse_config(argv: Sequence[str]) -> ProjectCollectConfig:
    from trl import TrlParser

    parser = TrlParser(
        (ProjectCollectConfig,),
        prog="ledex-train collect_projects",
        description=(__doc__ or "").splitlines()[0],
    )
    (config,) = parser.parse_args_and_config(list(argv))
    return config


def collect_projects(
    config: ProjectCollectConfig, backend: Backend | None = None
) -> dict[str, Any]:
    config.check()
    sources = mbpp_projects(config.split, config.path, config.shapes)
    if config.limit is not None:
        sources = sources[: config.limit]
    if not sources:
        raise LedexError("no source projects")
    return ProjectCollector(config, backend).run(sources)


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(sys.argv[1:] if argv is None else argv)
    try:
        table = collect_projects(config)
    except ValueError as error:
        print(f"ledex-train collect_projects: error: {error}", file=sys.stderr)
        return 2
    except LedexError as error:
        print(
            f"ledex-train collect_projects: error: {error}\n(what was written is kept in {config.output_dir}; "
            "rerun the same command to resume)",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print(
            f"ledex-train collect_projects: interrupted; rerun to resume from {config.output_dir}",
            file=sys.stderr,
        )
        return 130
    print(table_markdown(table), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
