"""What the language server adds to the two things it runs, on the buggy projects of
`benchmarks/cases/`, measured side by side in one run:

1. save -> diagnostics: from `textDocument/didSave` to the `publishDiagnostics` of that run,
   against running the project's tests alone (`ledex.sandbox.run_pytest`, the same sandbox and
   interpreter). The server's debounce is set to 0 here so only its own overhead is measured
   (the `debounce` setting, 0.5 s by default, comes on top in an editor).
2. the fix, against `ledex fix PATH --test NODE --json --no-cache` on the same case with the same
   model (a process start, the tests run once, the repair), with the server's background repair
   (`prefetch`) off and on, each in its own server on its own copy of the case:
   - save -> verified fix: from the save that makes the failure new to a verified fix the user can
     take: with prefetch off, the diagnostics then the "Explain and fix" command until its
     `workspace/applyEdit` (the user asks at once); with prefetch on, until the quick-fix offered
     for the diagnostic is the verified fix. Goal: <= 0.8x `ledex fix`. "first": the prefetch
     server's first repair, by the model (its load included, as `ledex fix` pays it); the
     repeats append a comment line, which keeps the function, so there the earlier fix is
     verified again without the model (what the server does after such an edit).
   - action -> edit: from sending the command to its `workspace/applyEdit`. Goal with prefetch
     (the background repair finished): <= 1 s.

    python benchmarks/lsp_latency.py [--cases NAME ...] [--limit N] [--repeat 3] [--model SPEC]

Without `--model`, the model is a scripted OpenAI-compatible server on loopback that answers the
case's reference fix, so all sides do exactly the same repair and the ratios are the server's own
cost; with `--model` (e.g. `embedded:0.5b`) all use that model with the same seed (the first
repair pays the server's model load; `ledex fix` pays it every time). The on-disk fix cache is
off everywhere. Medians over `--repeat` runs, interleaved so machine noise hits all sides alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script: make `ledex` and `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.cases.check_cases import CASES_ROOT, Case, copy_case, load_cases, reference_fix_code
from benchmarks.repair import select_cases

SERVER = [sys.executable, "-m", "ledex", "serve"]


@dataclass
class CaseTimes:
    case: str
    test: str
    pytest_alone: list[float] = field(default_factory=list)
    save_to_diagnostics: list[float] = field(default_factory=list)
    fix_command: list[float] = field(default_factory=list)
    action_to_edit: list[float] = field(default_factory=list)  # prefetch off
    save_to_fix: list[float] = field(
        default_factory=list
    )  # prefetch off: diagnostics, then the action
    prefetch_save_to_fix: list[float] = field(
        default_factory=list
    )  # until the quick-fix is verified
    prefetch_action_to_edit: list[float] = field(default_factory=list)
    #: the prefetch server's first background repair: a fresh repair by the model, its load included
    prefetch_first_fix: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def ratio(numerator: list[float], denominator: list[float]) -> float | None:
    if not numerator or not denominator:
        return None
    return statistics.median(numerator) / statistics.median(denominator)


# --- the two baselines -------------------------------------------------------------------------


def time_pytest_alone(project: Path) -> float:
    from ledex.sandbox.pytest_runner import run_pytest

    started = time.perf_counter()
    run = run_pytest(project, python=sys.executable)
    elapsed = time.perf_counter() - started
    if run.status != "ok":
        raise RuntimeError(f"the tests of {project} did not run: {run.message}")
    return elapsed


def time_fix_command(project: Path, node: str, model: str) -> tuple[float, bool]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "ledex", "fix", str(project), "--test", node, "--json", "--no-cache",
         "--model", model, "-n", "1", "--rounds", "1", "--python", sys.executable],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    try:
        verified = bool(json.loads(result.stdout)["results"][0]["verified"])
    except (ValueError, KeyError, IndexError):
        raise RuntimeError(f"ledex fix failed: {result.stderr.strip()[-500:]}") from None
    return elapsed, verified


# --- the server, driven like an editor -----------------------------------------------------------


class Editor:
    """A pytest-lsp client on `ledex serve`, with the command-based code action (no resolve), so
    the fix arrives as `workspace/applyEdit` like in an editor without lazy resolution."""

    def __init__(self, root: Path, model: str, prefetch: bool = False) -> None:
        from lsprotocol import types
        from pytest_lsp import make_test_lsp_client

        self.root, self.model, self.prefetch = root, model, prefetch
        self.client = make_test_lsp_client()
        self.edits: asyncio.Queue = asyncio.Queue()

        @self.client.feature(types.WORKSPACE_APPLY_EDIT)
        def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
            self.edits.put_nowait(time.perf_counter())
            # reported as applied, but the file is left buggy so the next repeat repairs again
            return types.ApplyWorkspaceEditResult(applied=True)

    async def start(self) -> None:
        from lsprotocol import types
        from pytest_lsp import client_capabilities

        from lsp_server.text import uri_of

        caps = client_capabilities("visual-studio-code")
        if caps.text_document and caps.text_document.code_action:
            caps.text_document.code_action.resolve_support = None
        await self.client.start_io(*SERVER)
        settings = {"python": sys.executable, "model": self.model, "candidates": 1, "rounds": 1,
                    "debounce": 0.0, "runOn": ["save", "command"], "prefetch": self.prefetch,
                    "cache": False}  # fmt: skip
        self.client.set_configuration(settings, section="ledex")
        await self.client.initialize_session(
            types.InitializeParams(
                capabilities=caps,
                root_uri=uri_of(self.root),
                workspace_folders=[types.WorkspaceFolder(uri=uri_of(self.root), name="bench")],
                initialization_options={"ledex": settings},
            )
        )

    async def stop(self) -> None:
        try:
            await asyncio.wait_for(self.client.shutdown_session(), 10)
        finally:
            await self.client.stop()

    async def _raw_request(self, method: str, params: Any) -> Any:
        """A request whose reply is read as plain JSON: lsprotocol's client-side converter reads a
        CodeAction holding a command as a Command, mangling it."""
        from concurrent.futures import Future

        msg_id = f"bench-{time.monotonic_ns()}"
        future: Future = Future()
        self.client.protocol._request_futures[msg_id] = future
        self.client.protocol._send_data(
            {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}
        )
        return await asyncio.wait_for(asyncio.wrap_future(future), 60)

    def uri(self, relpath: str) -> str:
        from lsp_server.text import uri_of

        return uri_of(self.root / relpath)

    async def run_tests(self) -> None:
        from lsprotocol import types

        await self.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="ledex.runTests", arguments=[])
        )

    async def save_to_diagnostics(self, relpath: str) -> float:
        from lsprotocol import types

        published = self.client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        started = time.perf_counter()
        self.client.text_document_did_save(
            types.DidSaveTextDocumentParams(types.TextDocumentIdentifier(self.uri(relpath)))
        )
        await asyncio.wait_for(published, 300)
        return time.perf_counter() - started

    async def quick_fix(self, test_file: str, node: str) -> dict[str, Any]:
        """The ledex quick-fix offered for the test's diagnostic (raw JSON)."""
        from lsprotocol import types

        diagnostics = [d for d in self.client.diagnostics.get(self.uri(test_file), [])
                       if d.code == node]  # fmt: skip
        if not diagnostics:
            raise RuntimeError(f"no diagnostic for {node}")
        params = types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(self.uri(test_file)),
            range=diagnostics[0].range,
            context=types.CodeActionContext(diagnostics=diagnostics),
        )
        raw = await self._raw_request(
            types.TEXT_DOCUMENT_CODE_ACTION, self.client.protocol._converter.unstructure(params)
        )
        return next(a for a in raw or [] if "ledex" in a.get("title", ""))

    async def save_to_verified_quick_fix(
        self, relpath: str, test_file: str, node: str, timeout: float = 900
    ) -> float | None:
        """From the save until the quick-fix for `node` is a verified fix (prefetch on); None when
        the background repair ended without one."""
        started = time.perf_counter()
        await self.save_to_diagnostics(relpath)
        idle_since = None
        while time.perf_counter() - started < timeout:
            title = (await self.quick_fix(test_file, node)).get("title", "")
            if "(verified fix for" in title:
                return time.perf_counter() - started
            if "the last attempt was not verified" in title or "(partial fix for" in title:
                return None
            # no repair kept and none running (it could not start): nothing will come
            if "Repairing in the background" in await self.hover(test_file, node):
                idle_since = None
            elif idle_since is None:
                idle_since = time.perf_counter()
            elif time.perf_counter() - idle_since > 5:
                return None
            await asyncio.sleep(0.05)
        raise RuntimeError(f"no verified quick-fix for {node} within {timeout:.0f}s")

    async def hover(self, test_file: str, node: str) -> str:
        from lsprotocol import types

        diagnostic = next(
            d for d in self.client.diagnostics.get(self.uri(test_file), []) if d.code == node
        )
        answer = await self.client.text_document_hover_async(
            types.HoverParams(
                text_document=types.TextDocumentIdentifier(self.uri(test_file)),
                position=diagnostic.range.start,
            )
        )
        contents = answer.contents if answer is not None else None
        return contents.value if isinstance(contents, types.MarkupContent) else ""

    async def action_to_edit(self, test_file: str, node: str) -> float | None:
        from lsprotocol import types

        command = (await self.quick_fix(test_file, node))["command"]
        started = time.perf_counter()
        result = await self.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command=command["command"], arguments=command["arguments"])
        )
        if not (result or {}).get("applied"):
            return None  # no verified fix to deliver
        applied = await asyncio.wait_for(self.edits.get(), 5)
        return applied - started


def _touch(project: Path, relpath: str, index: int, label: str) -> None:
    """A comment line keeps the code's behaviour but makes the earlier repair stale."""
    source = project / relpath
    source.write_text(source.read_text() + f"\n# benchmark run {index + 1} ({label})\n")


async def measure_case(case: Case, scratch: Path, repeat: int, model: str | None) -> CaseTimes:
    from tests.support.openai_loopback import LoopbackServer

    node = case.failing[0]
    test_file = node.split("::", 1)[0]
    times = CaseTimes(case.name, node)
    project = copy_case(case, scratch / case.name)
    from ledex import dialogue

    reply = dialogue.format_reply("The reference fix.", reference_fix_code(case))
    loopback = None if model else LoopbackServer(reply=lambda messages, params: reply)
    if loopback is not None:
        loopback.__enter__()
    spec = model or f"openai:{loopback.url if loopback else ''}#reference-fix"
    prefetched = copy_case(case, scratch / f"{case.name}-prefetch")
    editor, early = Editor(project, spec), Editor(prefetched, spec, prefetch=True)
    try:
        await editor.start()
        await early.start()
        await editor.run_tests()  # warm: the interpreter probe and the shadow workspace exist
        await early.run_tests()
        # its first background repair (a fresh one, and it loads the model, as `ledex fix` does
        # every time) ends before anything else is timed. In the repeats the comment line keeps
        # the function as it was, so that fix is verified again rather than asked for anew.
        first = await early.save_to_verified_quick_fix(case.bug_file, test_file, node)
        if first is not None:
            times.prefetch_first_fix.append(first)

        def keep(values: list[float], seconds: float | None, what: str, index: int) -> None:
            if seconds is None:
                times.notes.append(f"run {index + 1}: {what}: no verified fix (not timed)")
            else:
                values.append(seconds)

        for index in range(repeat):
            times.pytest_alone.append(await asyncio.to_thread(time_pytest_alone, project))
            times.save_to_diagnostics.append(await editor.save_to_diagnostics(case.bug_file))
            elapsed, verified = await asyncio.to_thread(time_fix_command, project, node, spec)
            times.fix_command.append(elapsed)
            if not verified:
                times.notes.append(f"run {index + 1}: ledex fix did not verify a fix")
            # prefetch off: the failure is new after this save; the user asks at once
            _touch(project, case.bug_file, index, "off")
            seen = await editor.save_to_diagnostics(case.bug_file)
            action = await editor.action_to_edit(test_file, node)
            keep(times.action_to_edit, action, "prefetch off", index)
            if action is not None:
                times.save_to_fix.append(seen + action)
            # prefetch on: the fix is verified in the background; then the user asks
            _touch(prefetched, case.bug_file, index, "on")
            ready = await early.save_to_verified_quick_fix(case.bug_file, test_file, node)
            keep(times.prefetch_save_to_fix, ready, "prefetch on", index)
            if ready is not None:
                keep(
                    times.prefetch_action_to_edit,
                    await early.action_to_edit(test_file, node),
                    "prefetch on",
                    index,
                )
    finally:
        await editor.stop()
        await early.stop()
        if loopback is not None:
            loopback.__exit__(None, None, None)
    return times


def print_table(results: list[CaseTimes]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=200)

    def med(values: list[float]) -> str:
        return f"{statistics.median(values):.2f}" if values else "-"

    def times(numerator: list[float], denominator: list[float]) -> str:
        value = ratio(numerator, denominator)
        return f"{value:.2f}x" if value is not None else "-"

    table = Table(title="ledex serve vs. the same work without the server (medians, seconds)")
    for name in ("case", "pytest alone", "save->diagnostics", "ratio", "ledex fix",
                 "off: action->edit", "off: save->fix", "ratio", "on: first save->fix", "ratio",
                 "on: save->fix", "ratio", "on: action->edit"):  # fmt: skip
        table.add_column(name, justify="left" if name == "case" else "right")
    for t in results:
        table.add_row(
            t.case, med(t.pytest_alone), med(t.save_to_diagnostics),
            times(t.save_to_diagnostics, t.pytest_alone), med(t.fix_command),
            med(t.action_to_edit), med(t.save_to_fix), times(t.save_to_fix, t.fix_command),
            med(t.prefetch_first_fix), times(t.prefetch_first_fix, t.fix_command),
            med(t.prefetch_save_to_fix), times(t.prefetch_save_to_fix, t.fix_command),
            med(t.prefetch_action_to_edit),
        )  # fmt: skip
    console.print(table)

    def summary(values: list[float | None], unit: str = "x") -> str:
        known = [v for v in values if v is not None]
        if not known:
            return "-"
        return f"{statistics.median(known):.2f}{unit} (range {min(known):.2f}-{max(known):.2f})"

    console.print(
        "medians over the cases: save->diagnostics / pytest alone "
        + summary([ratio(t.save_to_diagnostics, t.pytest_alone) for t in results])
        + "; prefetch off: save->fix / ledex fix "
        + summary([ratio(t.save_to_fix, t.fix_command) for t in results])
        + "; prefetch on: save->fix / ledex fix "
        + summary([ratio(t.prefetch_save_to_fix, t.fix_command) for t in results])
        + " (goal <= 0.8), action->edit "
        + summary(
            [
                statistics.median(t.prefetch_action_to_edit) if t.prefetch_action_to_edit else None
                for t in results
            ],
            " s",
        )  # fmt: skip
        + " (goal <= 1 s)"
    )
    for t in results:
        for note in t.notes:
            console.print(f"{t.case}: {note}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=[], metavar="NAME")
    parser.add_argument("--limit", type=int, default=6, help="first N selected cases (default 6)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", help="a model spec (default: a scripted loopback model)")
    parser.add_argument("--json", type=Path, help="also write the raw times here")
    args = parser.parse_args(argv)
    cases = select_cases(load_cases(CASES_ROOT), args.cases, args.limit)
    if not cases:
        parser.error("no case matches --cases/--limit")
    results = []
    with tempfile.TemporaryDirectory(prefix="ledex-lsp-bench-") as scratch:
        for case in cases:
            print(f"{case.name} ...", file=sys.stderr, flush=True)
            results.append(asyncio.run(measure_case(case, Path(scratch), args.repeat, args.model)))
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps([t.__dict__ for t in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
