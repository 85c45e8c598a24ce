"""Generates docs/reference.md: every ModelRollout field with its type, default, description and rules.

The source is the same as the CRD's: the pydantic models' JSON schema (field order, descriptions from the
attribute docstrings, constraints, CEL rules) plus the models themselves for defaults built by factories.
`modelrollout docs reference --output docs/reference.md` writes it; a unit test fails when it is stale.
"""

from __future__ import annotations

import json
import re
import typing
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from modelrollout.api import commands
from modelrollout.api.common import DNS_LABEL_PATTERN, DURATION_PATTERN
from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.api.status import ModelRolloutStatus
from modelrollout.identity import API_VERSION, ENVIRONMENT_ANNOTATION, KIND, PLURAL, SHORT_NAMES

COMMAND = "modelrollout docs reference --output docs/reference.md"
MODEL_DEFAULT = "each field's default"


# Schema helpers -------------------------------------------------------------------------------------------------
def _models(root: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """Every model class reachable from `root`, by class name (the JSON schema's $defs keys)."""
    found: dict[str, type[BaseModel]] = {}

    def visit(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation.__name__ not in found:
                found[annotation.__name__] = annotation
                for info in annotation.model_fields.values():
                    visit(info.annotation)
            return
        for arg in typing.get_args(annotation):
            visit(arg)

    visit(root)
    return found


def _field_info(model: type[BaseModel] | None, wire_name: str) -> FieldInfo | None:
    if model is None:
        return None
    for name, info in model.model_fields.items():
        if wire_name in (info.alias, name):
            return info
    return None


def _deref(node: dict[str, Any], defs: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The node with $ref and Optional's null branch resolved, and the model name it refers to."""
    node = dict(node)
    if "anyOf" in node:
        branches = [b for b in node.pop("anyOf") if b.get("type") != "null"]
        if len(branches) == 1:
            node = {**branches[0], **node}
    ref = node.pop("$ref", None)
    if ref is None:
        return node, None
    name = str(ref).rsplit("/", 1)[-1]
    return {**defs[name], **node}, name


def _code(value: str) -> str:
    return "`" + value.replace("|", "\\|") + "`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _anchor(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(", ", ": "))


def _default(node: dict[str, Any], info: FieldInfo | None) -> str | None:
    if "default" in node:
        return None if node["default"] is None else _value(node["default"])
    if info is None or info.default_factory is None:
        return None
    made = info.default_factory()  # type: ignore[call-arg]
    if isinstance(made, BaseModel):
        return MODEL_DEFAULT
    return _value(made)


def _scalar_rules(node: dict[str, Any]) -> list[str]:
    rules: list[str] = []
    pattern = node.get("pattern")
    if pattern == DURATION_PATTERN:
        rules.append("units ms, s, m, h (e.g. `1m30s`)")
    elif pattern == DNS_LABEL_PATTERN:
        rules.append("a DNS label: lowercase letters, digits and '-', starting and ending alphanumeric")
    elif pattern:
        rules.append(f"matches {_code(str(pattern))}")
    if "enum" in node:
        rules.append("one of " + ", ".join(_code(_value(v)) for v in node["enum"]))
    low, high = node.get("minimum"), node.get("maximum")
    if "exclusiveMinimum" in node:
        rules.append(f"> {_value(node['exclusiveMinimum'])}")
    elif low is not None:
        rules.append(f">= {_value(low)}")
    if "exclusiveMaximum" in node:
        rules.append(f"< {_value(node['exclusiveMaximum'])}")
    elif high is not None:
        rules.append(f"<= {_value(high)}")
    for low_key, high_key, unit in (
        ("minLength", "maxLength", "characters"),
        ("minItems", "maxItems", "items"),
        ("minProperties", "maxProperties", "entries"),
    ):
        low, high = node.get(low_key), node.get(high_key)
        if low is not None and high is not None:
            rules.append(f"{low} to {high} {unit}")
        elif high is not None:
            rules.append(f"at most {high} {unit}")
        elif low is not None and low > 0:
            rules.append(f"at least {low} {unit}")
    return rules


# Sections -------------------------------------------------------------------------------------------------------
@dataclass
class _Section:
    path: str
    description: str
    rules: list[dict[str, str]]
    rows: list[list[str]] = field(default_factory=list)


class _Walker:
    def __init__(self, root: type[BaseModel], claimed: dict[type[BaseModel], str]) -> None:
        raw = root.model_json_schema(by_alias=True, mode="validation")
        self.defs: dict[str, Any] = raw.pop("$defs", {})
        self.root = raw
        self.models = _models(root)
        self.models[root.__name__] = root
        self.sections: list[_Section] = []
        self.claimed = claimed  # model -> the first section documenting it

    def walk(self, path: str, description: str) -> list[_Section]:
        self._object(path, self.root, self.models[self.root["title"]], description)
        return self.sections

    def _object(
        self, path: str, node: dict[str, Any], model: type[BaseModel] | None, description: str
    ) -> None:
        section = _Section(
            path=path,
            description=description or node.get("description", ""),
            rules=list(node.get("x-kubernetes-validations", [])),
        )
        self.sections.append(section)
        required = set(node.get("required", []))
        nested: list[tuple[str, dict[str, Any], type[BaseModel] | None, str]] = []
        for name, raw in node.get("properties", {}).items():
            prop, model_name = _deref(raw, self.defs)
            info = _field_info(model, name)
            child_path = f"{path}.{name}"
            kind, target = self._kind(child_path, prop, model_name)
            if target is not None and target[2] is not None:
                first = self.claimed.setdefault(target[2], target[0])
                if first != target[0]:
                    target = (first, target[1], target[2], "")  # same shape as documented above: link there
                    kind += f" (as `{first}`)"
                    shown = f"[{_code(name)}](#{_anchor(first)})"
                    target_is_new = False
                else:
                    target_is_new = True
            else:
                target_is_new = target is not None
            if target is not None and target_is_new:
                shown = f"[{_code(name)}](#{_anchor(target[0])})"
            elif target is None:
                shown = _code(name)
            default = _default(raw if "default" in raw else prop, info)
            text = str(raw.get("description") or prop.get("description") or "")
            if default is not None:
                text = text.replace(f" (default {default})", "").replace(f"(default {default})", "")
            rules = self._rules(prop)
            section.rows.append(
                [
                    shown,
                    kind,
                    "yes" if name in required else "",
                    "" if default is None else default if default == MODEL_DEFAULT else _code(default),
                    _cell(text),
                    _cell("; ".join(rules)),
                ]
            )
            if target is not None and target_is_new:
                nested.append(target)
        for child_path, child, child_model, text in nested:
            self._object(child_path, child, child_model, text)

    def _kind(
        self, path: str, prop: dict[str, Any], model_name: str | None
    ) -> tuple[str, tuple[str, dict[str, Any], type[BaseModel] | None, str] | None]:
        """The field's type as shown, and the nested object section it needs (path, schema, model, text)."""
        kind = prop.get("type")
        if prop.get("x-kubernetes-preserve-unknown-fields"):
            return "object (free-form)", None
        if kind == "object" and "properties" in prop:
            about = str(self.defs.get(model_name or "", {}).get("description", ""))
            return "object", (path, prop, self.models.get(model_name or ""), about)
        if kind == "object" and isinstance(prop.get("additionalProperties"), dict):
            value, value_model = _deref(prop["additionalProperties"], self.defs)
            key = "<" + re.sub(r"s$", "", path.rsplit(".", 1)[-1]) + ">"
            inner, target = self._kind(f"{path}.{key}", value, value_model)
            return f"map[string]{inner}", target
        if kind == "array":
            item, item_model = _deref(prop.get("items", {}), self.defs)
            inner, target = self._kind(f"{path}[]", item, item_model)
            return f"[]{inner}", target
        if kind == "string" and prop.get("pattern") == DURATION_PATTERN:
            return "duration", None
        if kind == "string" and prop.get("format") == "date-time":
            return "timestamp", None
        return str(kind or "any"), None

    def _rules(self, prop: dict[str, Any]) -> list[str]:
        rules = _scalar_rules(prop)
        if prop.get("type") == "array":
            item, _ = _deref(prop.get("items", {}), self.defs)
            if item.get("type") != "object":
                rules += [f"each item {rule}" for rule in _scalar_rules(item)]
        if prop.get("type") == "object" and isinstance(prop.get("additionalProperties"), dict):
            value, _ = _deref(prop["additionalProperties"], self.defs)
            if value.get("type") != "object":
                rules += [f"each value {rule}" for rule in _scalar_rules(value)]
        return rules


def _render_section(section: _Section, status: bool) -> list[str]:
    lines = [f'<a id="{_anchor(section.path)}"></a>', f"### `{section.path}`", ""]
    if section.description:
        lines += [section.description, ""]
    if section.rules:
        lines.append(
            "Rules (enforced by the API server):"
            if status
            else "Rules (enforced at admission by CEL and by `kubectl modelrollout lint`):"
        )
        lines.append("")
        for rule in section.rules:
            where = f" (reported at `{section.path}{rule['fieldPath']}`)" if rule.get("fieldPath") else ""
            lines.append(f"- {rule['message']}{where}: `{rule['rule']}`")
        lines.append("")
    if section.rows:
        header = ["Field", "Type", "Required", "Default", "Description", "Validation"]
        if status:
            header = ["Field", "Type", "Description"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for row in section.rows:
            cells = [row[0], row[1], row[4]] if status else row
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _commands() -> list[str]:
    rows = [
        (
            commands.PAUSED,
            '`"true"`',
            "Holds the rollout where it is (traffic unchanged; guards keep judging) while present. "
            "Set in a finished phase, it pauses the next rollout once its candidate is warming.",
            "`kubectl modelrollout pause` / `resume`",
        ),
        (
            commands.PROMOTE,
            f"a new id, or `{commands.FULL_PREFIX}<id>`",
            "Advances one step (shadow to the first canary step, a step to the next, the last step to "
            f"promotion); `{commands.FULL_PREFIX}` promotes at once. Acted on once per id, recorded in "
            "`status.acknowledged.promote`.",
            "`kubectl modelrollout promote [--full]`",
        ),
        (
            commands.ABORT,
            "a new id",
            "Rolls the rollout in progress back to stable. Acted on once per id, recorded in "
            "`status.acknowledged.abort`.",
            "`kubectl modelrollout abort`",
        ),
        (
            ENVIRONMENT_ANNOTATION,
            "free text",
            "On `spec.template.metadata.annotations`: the serving environment's declared fingerprint, recorded "
            "in each version's `status.*.fingerprint.environment`.",
            "",
        ),
    ]
    lines = [
        "## Commands (annotations)",
        "",
        "Manual commands are annotations on the ModelRollout, so they never change the spec that Git owns.",
        "",
        "| Annotation | Value | Effect | Command |",
        "|---|---|---|---|",
    ]
    lines += [f"| `{name}` | {value} | {_cell(effect)} | {cli} |" for name, value, effect, cli in rows]
    return [*lines, ""]


def render() -> str:
    """The whole reference as Markdown."""
    lines = [
        "# ModelRollout field reference",
        "",
        "<!-- Generated from the pydantic models in operator/modelrollout/api by",
        f"     `{COMMAND}`. Do not edit by hand. -->",
        "",
        f"`apiVersion: {API_VERSION}`, `kind: {KIND}` (plural `{PLURAL}`, short name "
        f"`{', '.join(SHORT_NAMES)}`). Field names are camelCase; unknown fields are refused. Durations are "
        "numbers with units `ms`, `s`, `m` or `h`, e.g. `30s`, `1m30s`. Every rule below is checked by the "
        "API server at admission and, offline, by `kubectl modelrollout lint`, with the same message.",
        "",
        *_commands(),
        "## Spec",
        "",
        "What a user declares.",
        "",
    ]
    claimed: dict[type[BaseModel], str] = {}
    for section in _Walker(ModelRolloutSpec, claimed).walk("spec", ""):
        lines += _render_section(section, status=False)
    lines += [
        "## Status",
        "",
        "Written by the operator only (the status subresource); it is the operator's whole memory of a rollout.",
        "",
    ]
    for section in _Walker(ModelRolloutStatus, claimed).walk("status", ""):
        lines += _render_section(section, status=True)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"
