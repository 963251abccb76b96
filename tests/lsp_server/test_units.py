"""The server's pure parts: settings from the client, and ledex's line edits as LSP edits."""

from __future__ import annotations

import pytest
from lsprotocol import types
from pytest_lsp import client_capabilities

from ledex import patching
from ledex.source_text import SourceFormat, newline_of, normalise
from lsp_server.client_features import ClientFeatures
from lsp_server.fix_request import FixRequest, one_line
from lsp_server.settings import Settings, from_client
from lsp_server.text import apply_text_edits, canonical_uri, diff_edits, uri_of


def test_settings_from_initialization_options_then_configuration():
    settings, problems = from_client(
        {"ledex": {"model": "embedded:0.5b", "candidates": 2, "runOn": ["save"]}},
        {"pytestArgs": "-k 'not slow'", "showUnverified": True, "timeout": 5},
    )
    assert problems == []
    assert settings.model == "embedded:0.5b" and settings.candidates == 2
    assert settings.run_on == frozenset({"save"}) and settings.show_unverified
    assert settings.pytest_args == ("-k", "not slow") and settings.timeout == 5.0
    assert settings.repair_config().n == 2 and settings.repair_config().rounds == 3
    # the fix's verification runs collect what the diagnostics' run collected
    assert settings.fix_config().pytest_args == ("-k", "not slow")


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ({"candidates": 0}, "ledex.candidates"),
        ({"rounds": "many"}, "ledex.rounds"),
        ({"runOn": ["typing"]}, "ledex.runOn"),
        ({"showUnverified": "yes"}, "ledex.showUnverified"),
        ({"pytestArgs": [1, 2]}, "ledex.pytestArgs"),
        ({"noSuchSetting": 1}, "unknown setting `ledex.noSuchSetting`"),
        ("not an object", "must be an object"),
    ],
)
def test_a_bad_setting_is_reported_and_the_default_kept(raw, fragment):
    settings, problems = from_client(raw)
    assert settings == Settings()
    assert len(problems) == 1 and fragment in problems[0]


def test_the_editors_own_keys_in_the_section_are_no_problem():
    settings, problems = from_client({"trace": {"server": "verbose"}, "rounds": 2})
    assert settings.rounds == 2 and problems == []


def test_patch_edits_become_lsp_edits_that_give_the_patched_text():
    source = (
        'import os\n\n\ndef f(x):\n    """é😀"""\n    return x + 1\n\n\ndef g(y):\n    return y'
    )
    fixed = "import math\n\ndef f(x):\n    return math.floor(x)\n\ndef g(y):\n    return -y\n"
    patch = patching.apply_fix(source, fixed)
    assert isinstance(patch, patching.Patch) and patch.added_imports == ("import math",)
    edits = diff_edits(source, patch.new_source, "utf-16")
    assert apply_text_edits(source, edits) == patch.new_source


def test_crlf_text_gets_crlf_edits():
    stored = "def f(x):\r\n    return x + 1\r\n\r\n\r\ndef g():\r\n    pass\r\n"
    fixed = normalise(stored).replace("x + 1", "x - 1")
    new = SourceFormat(newline=newline_of(stored)).to_editor(fixed)
    edits = diff_edits(stored, new, "utf-16")
    assert [e.new_text for e in edits] == ["    return x - 1\r\n"]
    assert apply_text_edits(stored, edits) == stored.replace("x + 1", "x - 1")


def test_uris_are_compared_in_one_spelling():
    quoted = uri_of("/tmp/my project é/x.py")
    assert quoted == "file:///tmp/my%20project%20%C3%A9/x.py"
    assert canonical_uri("file:///tmp/my project é/x.py") == quoted == canonical_uri(quoted)
    assert canonical_uri("untitled:Untitled-1") == "untitled:Untitled-1"


def test_client_features_are_read_once_from_the_capabilities():
    vscode = ClientFeatures.of(client_capabilities("visual-studio-code"), "utf-16")
    assert vscode.apply_edit and vscode.document_changes and vscode.work_done_progress
    assert vscode.resolve_edit and vscode.markdown_hover and vscode.configuration
    bare = ClientFeatures.of(types.ClientCapabilities())
    assert not (
        bare.apply_edit or bare.document_changes or bare.work_done_progress or bare.resolve_edit
    )
    assert bare.position_encoding == "utf-16"


def test_fix_requests_round_trip_and_reject_garbage():
    request = FixRequest("file:///p/tests/test_x.py", 3, ("tests/test_x.py::test_y",))
    assert FixRequest.from_json(request.to_json()) == request
    many = FixRequest("file:///p/x.py", None, ("a", "b"), unverified=True)
    assert FixRequest.from_json(many.to_json()) == many
    bad: object
    for bad in (
        None,
        [],
        {"uri": "file:///x"},
        {"uri": 3, "nodeId": "a"},
        {"uri": "u", "nodeIds": []},
    ):
        with pytest.raises(Exception, match="uri|nodeId|expected"):
            FixRequest.from_json(bad)


def test_one_line_titles():
    assert one_line("It adds instead of subtracting. So the count grows.") == (
        "It adds instead of subtracting."
    )
    assert len(one_line("x" * 300)) == 90
