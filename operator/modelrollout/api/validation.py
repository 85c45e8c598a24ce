"""Turns validation errors into lines that name the offending field, e.g.
`spec.strategy.canary.steps: step weights must strictly ascend` — the same wording admission uses."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from modelrollout.api.spec import ModelRolloutSpec


def _path(prefix: str, loc: tuple[Any, ...]) -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def error_lines(error: ValidationError, prefix: str = "spec") -> list[str]:
    lines = []
    for item in error.errors(include_url=False):
        message = str(item["msg"]).removeprefix("Value error, ")
        path = _path(prefix, tuple(item["loc"]))
        # Rules report their own field path ("steps: ..."): join it to where pydantic found the model.
        head, sep, rest = message.partition(": ")
        if sep and head and " " not in head and not head.startswith(("'", '"')):
            path, message = f"{path}.{head}", rest
        lines.append(f"{path}: {message}")
    return lines


def describe(error: ValidationError, prefix: str = "spec") -> str:
    return "; ".join(error_lines(error, prefix))


def lint_spec(spec: dict[str, Any]) -> list[str]:
    """Every problem the API server's schema and rules would report for this spec, as `path: message` lines."""
    try:
        ModelRolloutSpec.model_validate(spec)
    except ValidationError as error:
        return error_lines(error)
    return []
