"""What `run_pytest` costs on top of the user's own pytest run.

On a generated 5-file project (a package of two modules, two test files, one failing test), it
times, alternating, the user's own `python -m pytest <ids>` in a temporary copy of the project and
`run_pytest(project, ids)` with full isolation (bubblewrap here, else the rlimits fallback's
shadow copy), with the same interpreter and node ids, and prints both medians; the last line is
the overhead in milliseconds (target: < 150 ms).

    python benchmarks/pytest_overhead.py [RUNS] [--python PATH]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

if __name__ == "__main__":  # run as a script: make `ledex` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledex.sandbox import isolation
from ledex.sandbox.pytest_runner import run_pytest

WARMUP = 2
NODE_IDS = ["tests/test_geometry.py", "tests/test_text.py"]
PROJECT = {
    "pyproject.toml": '[tool.pytest.ini_options]\ntestpaths = ["tests"]\npythonpath = ["."]\n',
    "shapes/__init__.py": "",
    "shapes/geometry.py": (
        "import math\n\n\ndef area(radius):\n    return math.pi * radius ** 2\n\n\n"
        "def perimeter(width, height):\n    return 2 * (width + height)\n"
    ),
    "shapes/text.py": (
        "def title(words):\n    return ' '.join(w.capitalize() for w in words.split())\n\n\n"
        "def count_vowels(text):\n"
        "    return sum(1 for c in text.lower() if c in 'aeio')  # bug: no 'u'\n"
    ),
    "tests/test_geometry.py": (
        "import pytest\nfrom shapes.geometry import area, perimeter\n\n\n"
        "@pytest.mark.parametrize('r', [0, 1, 2.5])\n"
        "def test_area(r):\n    assert area(r) >= 0\n\n\n"
        "def test_perimeter():\n    assert perimeter(2, 3) == 10\n"
    ),
    "tests/test_text.py": (
        "from shapes.text import count_vowels, title\n\n\n"
        "def test_title():\n    assert title('hello world') == 'Hello World'\n\n\n"
        "def test_count_vowels():\n    assert count_vowels('Ubuntu') == 3\n"
    ),
}


def _write_project(root: Path) -> Path:
    for relative, text in PROJECT.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="?", type=int, default=10)
    parser.add_argument(
        "--python", default=sys.executable, help="the 'user's' interpreter (with pytest)"
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="ledex-bench-") as scratch:
        project = _write_project(Path(scratch) / "project")
        copy = Path(scratch) / "copy"
        shutil.copytree(project, copy)

        def plain() -> None:  # the user's own run, in their own checkout
            subprocess.run([args.python, "-m", "pytest", "-q", *NODE_IDS], cwd=copy,
                           capture_output=True, check=False)  # fmt: skip

        def isolated() -> None:
            result = run_pytest(project, NODE_IDS, python=args.python, timeout=120)
            assert result.status == "ok" and len(result.failed) == 1, (
                result.status,
                result.message,
            )

        for _ in range(WARMUP):
            plain()
            isolated()
        times: dict[str, list[float]] = {"plain": [], "isolated": []}
        for _ in range(args.runs):  # alternate, so drift in machine load hits both alike
            times["plain"].append(_timed(plain))
            times["isolated"].append(_timed(isolated))

    plain_ms, isolated_ms = (statistics.median(times[k]) * 1000 for k in ("plain", "isolated"))
    fastest = {k: min(times[k]) * 1000 for k in times}  # less sensitive to a busy machine
    print(f"interpreter: {args.python}; isolation: {isolation.mode()}; runs: {args.runs} each")
    print(f"plain `python -m pytest`: median {plain_ms:.1f} ms (min {fastest['plain']:.1f})")
    print(f"run_pytest (isolated):    median {isolated_ms:.1f} ms (min {fastest['isolated']:.1f})")
    print(f"run_pytest overhead: {isolated_ms - plain_ms:.1f} ms (target < 150 ms)")


if __name__ == "__main__":
    main()
