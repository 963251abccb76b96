import pytest

from ledex.errors import ModelSpecError
from ledex.models.spec import ModelSpec, is_gguf_path, parse_model_name, parse_spec


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("embedded", ModelSpec("embedded")),
        ("embedded:0.5b", ModelSpec("embedded", "0.5b")),
        ("embedded:/m/x.gguf", ModelSpec("embedded", "/m/x.gguf")),
        ("embedded+/a/lora.gguf", ModelSpec("embedded", "", adapter="/a/lora.gguf")),
        ("embedded+/a:b/lora.gguf", ModelSpec("embedded", "", adapter="/a:b/lora.gguf")),
        ("embedded:0.5b+/a/lora.gguf", ModelSpec("embedded", "0.5b", adapter="/a/lora.gguf")),
        (
            "openai:http://127.0.0.1:8000/v1#Qwen/Qwen2.5-Coder",
            ModelSpec("openai", "http://127.0.0.1:8000/v1", model="Qwen/Qwen2.5-Coder"),
        ),
        ("openai:https://api.example.com/v1/", ModelSpec("openai", "https://api.example.com/v1")),
        ("hf:Qwen/Qwen2.5-Coder-0.5B-Instruct", ModelSpec("hf", "Qwen/Qwen2.5-Coder-0.5B-Instruct")),
        ("hf:./ckpt+./ckpt/adapter", ModelSpec("hf", "./ckpt", adapter="./ckpt/adapter")),
        ("vllm:/models/merged", ModelSpec("vllm", "/models/merged")),
        ("  embedded  ", ModelSpec("embedded")),
    ],
)
def test_parses(text: str, expected: ModelSpec) -> None:
    assert parse_spec(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "gpt4", "llama:x", "openai:", "openai:localhost:8000", "openai:ftp://x/v1", "hf:",
     "vllm:", "vllm:/m+/a", "embedded:", "embedded:0.5b+"],
)  # fmt: skip
def test_rejects_with_a_clear_message(text: str) -> None:
    with pytest.raises(ModelSpecError) as error:
        parse_spec(text)
    assert repr(text.strip()) in str(error.value) or "adapter" in str(error.value)


@pytest.mark.parametrize(
    "text", ["embedded", "embedded:0.5b+/a/l.gguf", "openai:http://h:1/v1#m", "hf:p+a", "vllm:p"]
)
def test_round_trips(text: str) -> None:
    assert str(parse_spec(text)) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.5b", ModelSpec("embedded", "0.5b")),  # a bare name, as `ledex model` always took
        ("qwen2.5-coder-0.5b", ModelSpec("embedded", "qwen2.5-coder-0.5b")),
        ("embedded", ModelSpec("embedded")),
        ("embedded:0.5b", ModelSpec("embedded", "0.5b")),
        ("embedded:0.5b+/a/lora.gguf", ModelSpec("embedded", "0.5b", adapter="/a/lora.gguf")),
        ("embedded+/a/lora.gguf", ModelSpec("embedded", "", adapter="/a/lora.gguf")),
        ("openai:http://h:1/v1#m", ModelSpec("openai", "http://h:1/v1", model="m")),
        (" hf:org/model ", ModelSpec("hf", "org/model")),
    ],
)
def test_model_names_are_spec_strings_or_bare_names(text: str, expected: ModelSpec) -> None:
    assert parse_model_name(text) == expected


def test_a_malformed_spec_in_a_model_name_is_refused() -> None:
    with pytest.raises(ModelSpecError, match="empty model name"):
        parse_model_name("embedded:")


@pytest.mark.parametrize(("target", "expected"), [("0.5b", False), ("", False), ("x.gguf", True), ("m/x", True)])
def test_gguf_paths_are_told_from_names(target: str, expected: bool) -> None:
    assert is_gguf_path(target) is expected
