"""The committed CRD's own schema of `spec`, as a JSON Schema hypothesis-jsonschema can draw from.

What the API server checks beyond JSON Schema (CEL rules, structural pruning) stays with the API server: the
draws are sent to it, and only what it admits is used. The pod template (`x-kubernetes-preserve-unknown-fields`)
is drawn separately, since any object is admitted there.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

Path_ = tuple[str | int, ...]
CRD = Path(__file__).resolve().parents[2] / "crds" / "modelrollout.yaml"


def _json_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        key: _json_schema(value)
        for key, value in node.items()
        if not key.startswith("x-kubernetes-") and key not in ("description", "format")
    }
    if out.get("type") == "object" and "properties" in out:
        out["additionalProperties"] = False  # the API server would prune (or, strict, refuse) other keys
    return out


def spec_schema() -> dict[str, Any]:
    """The CRD's spec schema without the template, which the caller draws itself."""
    crd = yaml.safe_load(CRD.read_text())
    spec = copy.deepcopy(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"])
    del spec["properties"]["template"]
    spec["required"] = [name for name in spec["required"] if name != "template"]
    schema: dict[str, Any] = _json_schema(spec)
    return schema


def subschemas(
    schema: dict[str, Any], path: tuple[str | int, ...] = ()
) -> Iterator[tuple[Path_, dict[str, Any]]]:
    """Every (path, schema) below `schema`: each property, and each list's first item."""
    for name, sub in (schema.get("properties") or {}).items():
        yield (*path, name), sub
        yield from subschemas(sub, (*path, name))
    if schema.get("type") == "array":
        yield from subschemas(schema["items"], (*path, 0))


def place(spec: dict[str, Any], path: Path_, value: Any) -> None:
    """Sets `value` at `path` in `spec`, creating what is missing on the way (a list gets one item)."""
    node: Any = spec
    for key, following in itertools.pairwise(path):
        if isinstance(key, int):
            if not node:
                node.append([] if isinstance(following, int) else {})
            node = node[0]
            continue
        if key not in node or not isinstance(node[key], dict | list):
            node[key] = [] if isinstance(following, int) else {}
        node = node[key]
    last = path[-1]
    if isinstance(last, int):
        if node:
            node[0] = value
        else:
            node.append(value)
    else:
        node[last] = value


def _install_many_more() -> None:
    """hypothesis-jsonschema 0.23.1 (the latest) still calls `many.more()`, which Hypothesis replaced with
    `with many(...) as elements: for _ in elements:`. Until it catches up, `more()` is that loop, one step per
    call, so its object strategy keeps working with the Hypothesis we pin."""
    from hypothesis.internal.conjecture import utils

    if hasattr(utils.many, "more"):
        return

    def more(self: Any) -> bool:
        if self._depth is None:
            self.__enter__()
            self._steps = iter(self)
        try:
            next(self._steps)
        except StopIteration:
            self.__exit__(None)
            return False
        return True

    utils.many.more = more  # type: ignore[attr-defined]


_install_many_more()
