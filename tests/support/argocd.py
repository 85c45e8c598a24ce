"""Runs the chart's Argo CD health check (a Lua script) on a ModelRollout, the way Argo CD does.

Argo CD evaluates resource health scripts with gopher-lua, a Lua 5.1 implementation: the live object is
decoded from JSON into nested tables and set as the global `obj`, the script runs as a chunk, and the table it
returns must carry `status` (one of Argo's health codes) and `message`. `argo_health` does the same with
lupa's Lua 5.1 runtime, in a reduced environment (no io, no debug, no module loading, only the clock
functions of os), so a script that passes here does not lean on anything Argo CD withholds.

Usable on live objects too: `argo_health(await custom.get_namespaced_custom_object(...))`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lupa import lua51

REPO = Path(__file__).resolve().parents[2]
HEALTH_SCRIPT = REPO / "charts" / "modelrollout-operator" / "argocd" / "health.lua"
HEALTH_STATUSES = frozenset({"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"})
_WITHHELD_GLOBALS = ("io", "debug", "package", "require", "module", "dofile", "loadfile", "load", "python")


class HealthScriptError(RuntimeError):
    """The script failed or returned something Argo CD would reject."""


def _runtime() -> Any:
    runtime = lua51.LuaRuntime(register_eval=False, register_builtins=False, unpack_returned_tuples=False)
    env = runtime.globals()
    os_library = env.os
    safe_os = runtime.table()
    for name in ("time", "date", "clock", "difftime"):
        safe_os[name] = os_library[name]
    env.os = safe_os
    for name in _WITHHELD_GLOBALS:
        env[name] = None
    return runtime


def _to_lua(runtime: Any, value: Any) -> Any:
    """JSON value -> Lua value, as Argo CD decodes it: objects and arrays become tables (arrays from index 1),
    numbers become Lua numbers (doubles), null becomes nil."""
    if isinstance(value, Mapping):
        table = runtime.table()
        for key, item in value.items():
            if item is not None:
                table[str(key)] = _to_lua(runtime, item)
        return table
    if isinstance(value, list | tuple):
        table = runtime.table()
        for index, item in enumerate(value, start=1):
            if item is not None:
                table[index] = _to_lua(runtime, item)
        return table
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    raise TypeError(f"not a JSON value: {value!r}")


def argo_health(obj: Mapping[str, Any], script: str | None = None) -> tuple[str, str]:
    """(status, message) of the health check for `obj` (a ModelRollout in its wire form)."""
    source = script if script is not None else HEALTH_SCRIPT.read_text()
    runtime = _runtime()
    runtime.globals().obj = _to_lua(runtime, obj)
    try:
        returned = runtime.execute(source)
    except lua51.LuaError as error:
        raise HealthScriptError(f"the health script failed: {error}") from error
    if lua51.lua_type(returned) != "table":
        raise HealthScriptError(f"the health script returned {returned!r}, not a table")
    status, message = returned["status"], returned["message"]
    if status not in HEALTH_STATUSES:
        raise HealthScriptError(f"the health script returned status {status!r}, which Argo CD does not know")
    if message is not None and not isinstance(message, str):
        raise HealthScriptError(f"the health script returned a non-string message {message!r}")
    return str(status), message or ""
