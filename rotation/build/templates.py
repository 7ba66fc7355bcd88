"""Render ``cfn/*.yaml`` from ``cfn/src/*.yaml``, embedding the SSM documents from their source.

An ``AWS::SSM::Document`` resource whose ``Metadata.certrotate.document`` names a document gets
that document's rendered content as ``Content`` (never a hand copy). Fragments listed in the
template's ``Metadata.certrotate.fragments`` (``cfn/src/fragments/``) are merged in section by
section, so resources both account templates need are written once; where a fragment needs a
value that differs between the templates it writes ``{certrotate:bind: NAME}`` and each template
gives ``NAME`` in ``Metadata.certrotate.bind``.

CloudFormation has no loop without a transform (which neither moto nor every deploy path runs),
so a resource with ``Metadata.certrotate.slots: {list: PARAMETER, count: N}`` is written N times
(``<LogicalId>1`` … ``<LogicalId>N``), the i-th under a generated condition that the list has an
i-th item (and, with ``when``, that the condition ``when`` holds for it); ``{certrotate:item: i}``
inside the resource stands for that item. The list is padded with empty items, so no
``Fn::Select`` ever runs past its end. ``conditions: {NAME: expression}`` in the slots adds, for
each copy, a condition ``<LogicalId><i>NAME`` (the expression with that copy's item), which the
resource and ``when`` name as ``{certrotate:condition: NAME}`` (e.g. for ``Fn::If`` inside it).
``python -m rotation.build.templates`` rewrites the templates; a test proves the committed ones
are current.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from rotation.build.ssm_documents import DOCUMENTS, render

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "cfn" / "src"
OUTPUT = ROOT / "cfn"


def document_contents() -> dict[str, Any]:
    """Document name -> its content, as ``yaml.safe_load`` reads it (with libyaml when there is one)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return {d.name: yaml.load(render(d), Loader=loader) for d in DOCUMENTS}  # noqa: S506 - a safe loader


BIND = "certrotate:bind"
ITEM = "certrotate:item"
SLOT_CONDITION = "certrotate:condition"


def substitute(value: Any, key: str, replace: Any) -> Any:
    """``value`` with every one-key mapping ``{key: x}`` replaced by ``replace(x)``."""
    if isinstance(value, dict):
        if set(value) == {key}:
            return replace(value[key])
        return {k: substitute(v, key, replace) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, key, replace) for v in value]
    return value


def slot_item(template: dict[str, Any], parameter: str, count: int, index: int) -> dict[str, Any]:
    """The ``index``-th (0-based) item of a list parameter, "" past its end."""
    kind = template["Parameters"][parameter]["Type"]
    joined = {"Ref": parameter} if kind == "String" else {"Fn::Join": [",", {"Ref": parameter}]}
    padded = {"Fn::Join": ["", [joined, "," * count]]}
    return {"Fn::Select": [index, {"Fn::Split": [",", padded]}]}


def expand_slots(template: dict[str, Any]) -> None:
    resources: dict[str, Any] = {}
    for logical_id, resource in template["Resources"].items():
        slots = (resource.get("Metadata") or {}).get("certrotate", {}).get("slots")
        if not slots:
            resources[logical_id] = resource
            continue
        del resource["Metadata"]["certrotate"]["slots"]
        if not resource["Metadata"]["certrotate"]:
            del resource["Metadata"]["certrotate"]
        if not resource["Metadata"]:
            del resource["Metadata"]
        unknown = set(slots) - {"list", "count", "when", "conditions"}
        if unknown:
            raise ValueError(f"{logical_id}: Metadata.certrotate.slots has unknown keys {sorted(unknown)}")
        parameter, count, when = slots["list"], int(slots["count"]), slots.get("when")
        for index in range(count):
            item = slot_item(template, parameter, count, index)
            name = f"{logical_id}{index + 1}"

            def this_copy(node: Any, item: Any = item, name: str = name) -> Any:
                node = substitute(json.loads(json.dumps(node)), ITEM, lambda _: item)
                return substitute(node, SLOT_CONDITION, lambda tail: f"{name}{tail}")

            conditions = template.setdefault("Conditions", {})
            for suffix, expression in (slots.get("conditions") or {}).items():
                conditions[f"{name}{suffix}"] = this_copy(expression)
            condition: dict[str, Any] = {"Fn::Not": [{"Fn::Equals": [item, ""]}]}
            if when is not None:
                condition = {"Fn::And": [condition, this_copy(when)]}
            conditions[name] = condition
            resources[name] = {"Condition": name, **this_copy(resource)}
    template["Resources"] = resources


def render_template(source: Path) -> str:
    template = yaml.safe_load(source.read_text())
    bindings = template.get("Metadata", {}).get("certrotate", {}).pop("bind", {})
    fragments = template.get("Metadata", {}).get("certrotate", {}).get("fragments", [])
    for fragment_name in fragments:
        fragment = yaml.safe_load((SOURCES / "fragments" / fragment_name).read_text())
        for section, entries in fragment.items():
            clash = set(entries) & set(template.get(section, {}))
            if clash:
                raise ValueError(f"{fragment_name} redefines {section} {sorted(clash)} of {source.name}")
            template.setdefault(section, {}).update(substitute(entries, BIND, lambda name: bindings[name]))
    if fragments:
        del template["Metadata"]["certrotate"]["fragments"]
        if not template["Metadata"]["certrotate"]:
            del template["Metadata"]["certrotate"]
        if not template["Metadata"]:
            del template["Metadata"]
    expand_slots(template)
    template = json.loads(json.dumps(template))  # no shared nodes, so no YAML anchors in the output
    contents = document_contents()
    for resource in template["Resources"].values():
        name = (resource.get("Metadata") or {}).get("certrotate", {}).get("document")
        if resource["Type"] == "AWS::SSM::Document" and name:
            resource["Properties"]["Content"] = contents[name]
    header = (
        f"# Generated by `python -m rotation.build.templates` from cfn/src/{source.name} and "
        "ssm_documents/; do not edit.\n"
    )
    return header + str(yaml.safe_dump(template, sort_keys=False, width=120))


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m rotation.build.templates",
        description="Render cfn/*.yaml from cfn/src/ with the SSM documents embedded (rewrites them).",
    )
    parser.parse_args(sys.argv[1:] if argv is None else argv)  # --help exits here, writing nothing
    for source in sorted(SOURCES.glob("*.yaml")):
        target = OUTPUT / source.name
        target.write_text(render_template(source))
        print(f"wrote {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
