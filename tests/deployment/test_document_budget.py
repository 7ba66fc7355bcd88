"""The SSM documents within their size budget: 56 KiB each as submitted, counting the longest
parameter values their patterns admit (CreateDocument's 64 KB quota counts runtime parameter values).

On main before issue 24, RunUpdateTLS was 61,176 bytes before any parameter value, and its path
patterns admitted 4,096 characters each.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from rotation.build.budget import SIZE_BUDGET, UnboundedPattern, document_size, longest_value
from rotation.build.ssm_documents import DOCUMENTS, Document, document_path, render

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("document", DOCUMENTS, ids=[d.name for d in DOCUMENTS])
def test_each_document_with_its_longest_parameter_values_is_within_56_kib(document: Document) -> None:
    path = document_path(document)
    text = path.read_text()
    assert text == render(document)
    content = yaml.safe_load(text)
    size = document_size(path.stem, text, content)
    assert size.submitted == len(path.read_bytes())
    assert set(size.longest_values) == set(content["parameters"])
    for name, spec in content["parameters"].items():
        assert size.longest_values[name] == len(longest_value(spec["allowedPattern"]))  # each used once
    assert size.worst_case <= SIZE_BUDGET, f"{path.name}: {size.worst_case} bytes in the worst case"
    # The same content as JSON (as an SDK may send it) is within the budget too.
    as_json = json.dumps(content, separators=(",", ":"))
    assert len(as_json.encode()) + sum(size.longest_values.values()) <= SIZE_BUDGET


def test_the_templates_embed_the_documents_that_are_measured() -> None:
    for template in ("central-account.yaml", "workload-account.yaml"):
        resources = yaml.safe_load((ROOT / "cfn" / template).read_text())["Resources"]
        embedded = {
            r["Properties"]["Name"]: r["Properties"]["Content"]
            for r in resources.values()
            if r["Type"] == "AWS::SSM::Document"
        }
        assert embedded == {d.name: yaml.safe_load(render(d)) for d in DOCUMENTS}


def test_the_longest_values_are_the_patterns_own() -> None:
    path_pattern = yaml.safe_load(document_path(DOCUMENTS[0]).read_text())["parameters"]["KeyFile"]["allowedPattern"]
    longest = longest_value(path_pattern)
    assert len(longest) == 15 * 51 + 256 and longest.count("/") == 16
    assert len(longest_value(r"^arn:aws(-[a-z]{1,10}){0,2}:x{1,5}$")) == len("arn:aws") + 22 + 6
    with pytest.raises(UnboundedPattern):
        longest_value(r"^[a-z]+$")  # no bound, no worst case: such a pattern cannot be budgeted
    with pytest.raises(UnboundedPattern):
        document_size("x", "", {"parameters": {"Free": {"type": "String"}}})


def test_a_value_used_in_the_text_counts_once_per_use() -> None:
    content = {"parameters": {"Name": {"allowedPattern": "^[a-z]{1,10}$"}}}
    text = "run: echo {{ Name }} {{Name}}\n"
    size = document_size("x", text, content)
    assert size.longest_values == {"Name": 20} and size.worst_case == len(text) + 20
