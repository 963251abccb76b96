"""docs/DESIGN.md §1: dependencies point one way and the core stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imported_modules(package: str) -> set[tuple[str, str]]:
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {(str(path.relative_to(ROOT)), alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add((str(path.relative_to(ROOT)), node.module))
    return found


def test_the_core_imports_neither_application():
    offenders = {
        (path, module)
        for path, module in _imported_modules("ledex")
        if module.split(".")[0] in ("lsp_server", "trainer")
    }
    assert offenders == set()


def test_the_core_does_not_import_torch_or_llama_at_import_time():
    code = (
        "import sys, ledex, ledex.cli, ledex.dialogue, ledex.models, ledex.weights, ledex.demo;"
        "heavy = {'torch', 'transformers', 'llama_cpp', 'vllm'} & set(sys.modules);"
        "sys.exit(', '.join(sorted(heavy)) or None)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, f"imported at module level: {result.stderr.strip()}"


def test_ledex_train_lists_its_stages():
    result = subprocess.run(
        [sys.executable, "-c", "from trainer.cli import main; main(['--help'])"],
        capture_output=True, text=True,
    )  # fmt: skip
    for stage in ("collect", "sft", "rl", "eval", "export"):
        assert stage in result.stdout
