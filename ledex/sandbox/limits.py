"""Resource limits for sandboxed processes.

Stdlib only: the warm worker imports this module *inside* the sandbox to limit each program it
forks, and the host uses it to limit whole sandboxes.
"""

from __future__ import annotations

import contextlib
import resource
from dataclasses import asdict, dataclass

_MB = 1 << 20


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 10
    memory_mb: int = 1024  # address space; Python needs ~30 MB, numpy-style imports ~200 MB
    processes: int = 64  # enforced by a pids cgroup where available (RLIMIT_NPROC does not bind root)
    file_size_mb: int = 64
    open_files: int = 256
    tmp_mb: int = 256  # size of the private writable /tmp
    #: the memory cgroup's cap on the whole sandbox (its processes and the files it keeps in tmpfs),
    #: where one can be created; 0: memory_mb + twice tmp_mb (/tmp and /dev/shm) + 256 MB
    sandbox_memory_mb: int = 0

    @property
    def cgroup_memory_mb(self) -> int:
        return self.sandbox_memory_mb or self.memory_mb + 2 * self.tmp_mb + 256

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, int]) -> Limits:
        return cls(**{key: int(value) for key, value in data.items() if key in cls.__dataclass_fields__})


def apply(limits: Limits, *, cpu: bool = True) -> None:
    """Set this process's rlimits (children inherit them). Called after fork, before exec."""
    if cpu:
        _set(resource.RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + 1)
    _set(resource.RLIMIT_AS, limits.memory_mb * _MB)
    _set(resource.RLIMIT_FSIZE, limits.file_size_mb * _MB)
    _set(resource.RLIMIT_NOFILE, limits.open_files)
    _set(resource.RLIMIT_NPROC, limits.processes)
    _set(resource.RLIMIT_CORE, 0)  # a segfault must not leave a core file behind


def _set(which: int, soft: int, hard: int | None = None) -> None:
    hard = soft if hard is None else hard
    current_soft, current_hard = resource.getrlimit(which)
    # Never try to raise a hard limit we do not have (an unprivileged caller would get EPERM).
    if current_hard != resource.RLIM_INFINITY:
        hard = min(hard, current_hard)
        soft = min(soft, hard)
    # e.g. RLIMIT_NPROC below the current count for root: the cgroup does that job
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(which, (soft, hard))
