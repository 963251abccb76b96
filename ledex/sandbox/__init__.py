"""Running untrusted code: isolation (isolation.py), benchmark programs (programs.py), pytest runs."""

from ledex.sandbox.programs import (
    IOTest,
    Program,
    ProgramPool,
    ProgramResult,
    run_many,
    run_program,
)
from ledex.sandbox.pytest_runner import (
    CollectionError,
    Frame,
    PytestRun,
    TestOutcome,
    resolve_python,
    run_pytest,
)

__all__ = ["IOTest", "Program", "ProgramPool", "ProgramResult", "run_many", "run_program"]
__all__ += ["CollectionError", "Frame", "PytestRun", "TestOutcome", "resolve_python", "run_pytest"]
