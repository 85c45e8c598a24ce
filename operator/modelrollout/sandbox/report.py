"""A self-contained HTML report of a sandbox run: per-slice weights and guard values over time, decisions.

Charts are inline SVG drawn here (a few lines of arithmetic), so a report opens anywhere without scripts.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from modelrollout.sandbox.scenario import Scenario
from modelrollout.sandbox.trafficgen import TrafficStats

WIDTH, HEIGHT, PAD, LEGEND = 860, 220, 44, 130
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
PHASE_COLOURS = {
    "Warming": "#fff4d6",
    "Shadow": "#e8e4f7",
    "Canary": "#e3f1fb",
    "Preview": "#f3ecd9",
    "Baking": "#dff3ee",
    "Promoting": "#e4f6e4",
    "Paused": "#eeeeee",
    "RolledBack": "#fbe3e3",
}


class _Sample(Protocol):
    t: float
    phase: str | None
    weight: int
    mirror: float
    status: dict[str, Any]


Series = list[tuple[float, float]]


def _line_chart(
    title: str,
    series: dict[str, Series],
    dashed: dict[str, Series],
    samples: Sequence[_Sample],
    events: Sequence[tuple[float, str]] = (),
) -> str:
    points = [p for s in (*series.values(), *dashed.values()) for p in s]
    if not points:
        return f"<h3>{html.escape(title)}</h3><p>no data</p>"
    t_max = max(max(p[0] for p in points), 1.0)
    top = max(p[1] for p in points)
    y_max = top * 1.1 if top > 1e-6 else 1.0  # all zeros: a plain 0..1 axis, not one of 1e-9
    plot_w, plot_h = WIDTH - 2 * PAD - LEGEND, HEIGHT - 2 * PAD

    def x(t: float) -> float:
        return PAD + plot_w * t / t_max

    def y(v: float) -> float:
        return HEIGHT - PAD - plot_h * v / y_max

    parts = [f'<svg width="{WIDTH}" height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg" font-size="11">']
    for start, end, phase in _phase_spans(samples):
        colour = PHASE_COLOURS.get(phase)
        if colour:
            parts.append(
                f'<rect x="{x(start):.1f}" y="{PAD}" width="{max(x(end) - x(start), 1):.1f}" height="{plot_h}" '
                f'fill="{colour}"><title>{phase}</title></rect>'
            )
    parts.append(
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{PAD + plot_w}" y2="{HEIGHT - PAD}" stroke="#333"/>'
    )
    for at, what in events:  # faults and operations, so an outage or a restart shows on every chart
        parts.append(
            f'<line x1="{x(at):.1f}" y1="{PAD}" x2="{x(at):.1f}" y2="{HEIGHT - PAD}" stroke="#c2185b" '
            f'stroke-dasharray="2,3"><title>{html.escape(what)}</title></line>'
            f'<text x="{x(at) + 3:.1f}" y="{PAD - 4}" fill="#c2185b">{html.escape(what.split(" at ")[0])}</text>'
        )
    parts.append(f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="#333"/>')
    for i in range(5):
        value = y_max * i / 4
        parts.append(f'<text x="{PAD - 4}" y="{y(value) + 4:.1f}" text-anchor="end">{value:.3g}</text>')
        second = t_max * i / 4
        parts.append(
            f'<text x="{x(second):.1f}" y="{HEIGHT - PAD + 14}" text-anchor="middle">{second:.0f}s</text>'
        )
    for index, (name, line) in enumerate(series.items()):
        colour = PALETTE[index % len(PALETTE)]
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in line)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        parts.append(
            f'<text x="{PAD + plot_w + 8}" y="{PAD + 14 * index}" fill="{colour}">{html.escape(name)}</text>'
        )
        if name in dashed:
            bound = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in dashed[name])
            parts.append(
                f'<polyline fill="none" stroke="{colour}" stroke-dasharray="5,4" stroke-width="1" points="{bound}"/>'
            )
    parts.append("</svg>")
    return f"<h3>{html.escape(title)}</h3>" + "".join(parts)


def _phase_spans(samples: Sequence[_Sample]) -> list[tuple[float, float, str]]:
    spans: list[tuple[float, float, str]] = []
    for sample in samples:
        phase = sample.phase or ""
        if spans and spans[-1][2] == phase:
            spans[-1] = (spans[-1][0], sample.t, phase)
        else:
            spans.append((sample.t, sample.t, phase))
    return spans


def _weights(samples: Sequence[_Sample]) -> dict[str, Series]:
    series: dict[str, Series] = {}
    for sample in samples:
        for item in sample.status.get("slices") or []:
            series.setdefault(f"{item['name']} weight %", []).append(
                (sample.t, float(item.get("canaryWeight") or 0))
            )
        series.setdefault("mirror %", []).append((sample.t, sample.mirror))
    return series


def _guards(samples: Sequence[_Sample]) -> dict[str, tuple[dict[str, Series], dict[str, Series]]]:
    charts: dict[str, tuple[dict[str, Series], dict[str, Series]]] = {}
    for sample in samples:
        for item in sample.status.get("slices") or []:
            for guard in item.get("guards") or []:
                values, bounds = charts.setdefault(guard["name"], ({}, {}))
                canary, threshold = guard.get("canary"), guard.get("threshold")
                if isinstance(canary, int | float) and math.isfinite(canary):
                    values.setdefault(item["name"], []).append((sample.t, float(canary)))
                if isinstance(threshold, int | float) and math.isfinite(threshold):
                    bounds.setdefault(item["name"], []).append((sample.t, float(threshold)))
    return charts


def _traffic_table(scenario: Scenario, traffic: TrafficStats | None) -> str:
    """Requests per slice (and probe) and version: served to users, and mirrored."""
    if traffic is None:
        return ""
    versions = [scenario.stable_version, scenario.candidate_version]
    probes = {probe.name for probe in scenario.traffic.probes}
    head = "".join(f"<th>{html.escape(v)} served</th><th>{html.escape(v)} mirrored</th>" for v in versions)
    rows = ""
    for load in scenario.loads():
        kind = " (probe)" if load.name in probes else ""
        cells = "".join(
            f"<td>{traffic.total(slice=load.name, version=v, kind='served')}</td>"
            f"<td>{traffic.total(slice=load.name, version=v, kind='mirrored')}</td>"
            for v in versions
        )
        rows += f"<tr><td>{html.escape(load.name)}{kind}</td>{cells}</tr>"
    return f"<h3>Traffic</h3><table><tr><th>slice</th>{head}</tr>{rows}</table>"


def render(
    scenario: Scenario,
    namespace: str,
    samples: Sequence[_Sample],
    events: Sequence[tuple[float, str]],
    traffic: TrafficStats | None = None,
) -> str:
    final = samples[-1].status if samples else {}
    rows = "".join(
        f"<tr><td>{html.escape(str(d.get('time', '')))}</td><td>{html.escape(str(d.get('phase')))}</td>"
        f"<td>{html.escape(str(d.get('reason')))}</td><td>{html.escape(str(d.get('message')))}</td></tr>"
        for d in final.get("history") or []
    )
    faults = "".join(f"<li>{t:.1f}s: {html.escape(what)}</li>" for t, what in events)
    charts = [
        _line_chart("Candidate share per slice (phases shaded)", _weights(samples), {}, samples, events)
    ]
    for name, (values, bounds) in _guards(samples).items():
        title = f"Guard {name}: candidate value per slice (dashed: its bound)"
        charts.append(_line_chart(title, values, bounds, samples, events))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>modelrollout: {html.escape(scenario.name)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:900px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 6px;font-size:12px;vertical-align:top}}</style></head><body>
<h1>{html.escape(scenario.name)}</h1><p>{html.escape(scenario.description or "")}</p>
<p>namespace <code>{html.escape(namespace)}</code>; outcome <b>{html.escape(str(final.get("phase")))}</b>,
stable <b>{html.escape(str(final.get("stableVersion")))}</b>; generated {datetime.now(UTC).isoformat(timespec="seconds")}</p>
<p><i>{html.escape(str(final.get("message") or ""))}</i></p>
{"".join(charts)}
{_traffic_table(scenario, traffic)}
<h3>Faults and operations</h3><ul>{faults or "<li>none</li>"}</ul>
<h3>Decisions</h3><table><tr><th>time</th><th>phase</th><th>reason</th><th>message</th></tr>{rows}</table>
</body></html>"""


def write_report(
    directory: Path,
    scenario: Scenario,
    namespace: str,
    samples: Sequence[_Sample],
    events: Sequence[tuple[float, str]],
    traffic: TrafficStats | None = None,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path = directory / f"{scenario.name}-{stamp}.html"
    path.write_text(render(scenario, namespace, samples, events, traffic))
    return path
