"""``report.html``: one self-contained page, a summary and then one card per input file.

The summary has counts by status, elapsed time, mean and p95 latency per stage, a tally of
reason codes and the circuit-breaker transitions. Each card has the input path, status, reasons,
route, before/after/mask/candidate thumbnails, metrics and timings. Every string goes through
:func:`~consumers.report.values.escape`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from consumers.report.records import (
    STATUSES,
    BreakerTransition,
    ReportRow,
    atomic_write,
    input_key,
    is_number,
    numeric_timings,
    reason_pairs,
    status_of,
)
from consumers.report.style import CSP, CSS
from consumers.report.thumbnails import Thumbnail, thumbnails
from consumers.report.values import MUTED_DASH, escape, fmt_ms, render_value

__all__ = ["write_html"]

_STATUS_COLOURS: Final = {
    "done": "#1a7f37",
    "review": "#9a6700",
    "rejected": "#cf222e",
    "failed": "#6639ba",
}
_OTHER_COLOUR: Final = "#57606a"


def _status_class(status: str) -> str:
    return f"s-{status}" if status in STATUSES else "s-other"


def _badge(status: str) -> str:
    colour = _STATUS_COLOURS.get(status, _OTHER_COLOUR)
    return f'<span class="badge" style="background:{colour}">{escape(status or "unknown")}</span>'


# --------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------


def _tiles_html(rows: Sequence[ReportRow], elapsed_s: float | None) -> str:
    """The row of tiles: files, one per status, elapsed time and rate."""
    statuses = Counter(status_of(row.record) for row in rows)
    total = len(rows)
    parts = ['<div class="tiles">']
    parts.append(
        f'<div class="tile" style="--c:#1f2328"><b>{total:,}</b>files</div>'
        if total
        else '<div class="tile" style="--c:#1f2328"><b>0</b>files</div>'
    )
    shown = [*STATUSES, *sorted(set(statuses) - set(STATUSES))]
    for status in shown:
        if status not in STATUSES and not statuses[status]:
            continue
        colour = _STATUS_COLOURS.get(status, _OTHER_COLOUR)
        parts.append(
            f'<div class="tile {escape(_status_class(status))}" style="--c:{colour}">'
            f"<b>{statuses[status]:,}</b>{escape(status or 'unknown')}</div>"
        )
    if elapsed_s is not None and math.isfinite(elapsed_s):
        rate = f"{total / elapsed_s:,.2f} files/s" if elapsed_s > 0 else ""
        parts.append(
            f'<div class="tile" style="--c:#0969da"><b>{elapsed_s:,.1f} s</b>'
            f"elapsed{' · ' + escape(rate) if rate else ''}</div>"
        )
    else:
        parts.append('<div class="tile" style="--c:#0969da"><b>—</b>elapsed</div>')
    parts.append("</div>")
    return "".join(parts)


def _timings_html(rows: Sequence[ReportRow]) -> str:
    """Files, mean, p95 and max latency per stage."""
    per_stage: dict[str, list[float]] = {}
    for row in rows:
        for stage, value in numeric_timings(row.record).items():
            per_stage.setdefault(stage, []).append(value)
    parts = ["<h2>Time per stage</h2>"]
    if not per_stage:
        parts.append('<p class="muted">No timings recorded.</p>')
        return "".join(parts)
    parts.append(
        '<table class="timings"><thead><tr><th>stage</th><th>files</th><th>mean</th>'
        "<th>p95</th><th>max</th></tr></thead><tbody>"
    )
    for stage, values in per_stage.items():
        arr = np.asarray(values, dtype=np.float64)
        parts.append(
            f'<tr><td>{escape(stage)}</td><td class="num">{len(values):,}</td>'
            f'<td class="num">{escape(fmt_ms(float(arr.mean())))}</td>'
            f'<td class="num">{escape(fmt_ms(float(np.percentile(arr, 95))))}</td>'
            f'<td class="num">{escape(fmt_ms(float(arr.max())))}</td></tr>'
        )
    parts.append("</tbody></table>")
    return "".join(parts)


def _reasons_html(rows: Sequence[ReportRow]) -> str:
    """Each reason code with its file count and meaning, most frequent first."""
    tally: Counter[str] = Counter()
    texts: dict[str, str] = {}
    for row in rows:
        for code, text in reason_pairs(row.record):
            tally[code] += 1
            texts.setdefault(code, text)
    parts = ["<h2>Reasons</h2>"]
    if not tally:
        parts.append('<p class="muted">No reasons: nothing was rejected or flagged.</p>')
        return "".join(parts)
    parts.append(
        '<table class="reasons"><thead><tr><th>code</th><th>files</th><th>meaning</th>'
        "</tr></thead><tbody>"
    )
    for code, count in sorted(tally.items(), key=lambda item: (-item[1], item[0])):
        parts.append(
            f'<tr><td><code>{escape(code)}</code></td><td class="num">{count:,}</td>'
            f"<td>{escape(texts.get(code, ''))}</td></tr>"
        )
    parts.append("</tbody></table>")
    return "".join(parts)


def _breaker_html(transitions: Sequence[BreakerTransition]) -> str:
    """The circuit-breaker transitions, in the order given (nothing when there are none)."""
    if not transitions:
        return ""
    parts = [
        '<h2>Circuit breaker</h2><table class="breaker"><thead><tr><th>at</th><th>stage</th>'
        "<th>vendor</th><th>from</th><th>to</th><th>failure rate</th><th>why</th></tr>"
        "</thead><tbody>"
    ]
    for tr in transitions:
        rate = "—" if tr.failure_rate is None else f"{tr.failure_rate:.1%}"
        parts.append(
            f"<tr><td>{escape(tr.at)}</td><td>{escape(tr.stage)}</td>"
            f"<td>{escape(tr.vendor or 'all')}</td><td>{escape(tr.from_state)}</td>"
            f"<td>{escape(tr.to_state)}</td>"
            f'<td class="num">{escape(rate)}</td><td>{escape(tr.reason)}</td></tr>'
        )
    parts.append("</tbody></table>")
    return "".join(parts)


def _summary_html(
    rows: Sequence[ReportRow], elapsed_s: float | None, transitions: Sequence[BreakerTransition]
) -> str:
    return (
        '<section class="summary">'
        f"{_tiles_html(rows, elapsed_s)}{_timings_html(rows)}{_reasons_html(rows)}"
        f"{_breaker_html(transitions)}</section>"
    )


# --------------------------------------------------------------------------------------------
# Cards
# --------------------------------------------------------------------------------------------


def _route_html(route: Any) -> str:
    if not isinstance(route, Mapping):
        return render_value(route)
    if not route:
        return MUTED_DASH
    parts: list[str] = []
    stages = route.get("stages")
    rest: Mapping[str, Any] = route
    if isinstance(stages, (list, tuple)):
        chips = " → ".join(f"<span>{escape(stage)}</span>" for stage in stages) or (
            '<span class="muted">no stages</span>'
        )
        parts.append(f'<div class="chips">{chips}</div>')
        rest = {key: value for key, value in route.items() if key != "stages"}
    if rest:
        parts.append(render_value(rest))
    return "".join(parts)


def _figure(label: str, thumb: Thumbnail) -> str:
    uri, why = thumb
    if uri is None:
        body = f'<div class="placeholder">image unavailable<br>{escape(why)}</div>'
    else:
        body = f'<img src="{escape(uri)}" alt="{escape(label)}" loading="lazy">'
    return f"<figure>{body}<figcaption>{escape(label)}</figcaption></figure>"


def _figures_html(row: ReportRow, thumbs: Mapping[Path, Thumbnail]) -> str:
    images = [
        ("before", row.before),
        ("after", row.after),
        ("mask", row.mask),
        ("candidate", row.candidate),
    ]
    figures = [_figure(label, thumbs[path]) for label, path in images if path is not None]
    if figures:
        return f'<div class="thumbs">{"".join(figures)}</div>'
    return '<p class="muted">No preview: the upload is never decoded for the report.</p>'


def _details_html(record: Mapping[str, Any]) -> str:
    """Route, metrics and timings side by side."""
    timings = record.get("timings_ms")
    timing_html = (
        render_value({k: fmt_ms(v) if is_number(v) else v for k, v in timings.items()})
        if isinstance(timings, Mapping)
        else render_value(timings)
    )
    return (
        '<div class="grid">'
        f"<div><h3>Route</h3>{_route_html(record.get('route'))}</div>"
        f"<div><h3>Metrics</h3>{render_value(record.get('metrics'))}</div>"
        f"<div><h3>Timings</h3>{timing_html}</div>"
        "</div>"
    )


def _card_html(index: int, row: ReportRow, thumbs: Mapping[Path, Thumbnail]) -> str:
    record = row.record
    status = status_of(record)
    colour = _STATUS_COLOURS.get(status, _OTHER_COLOUR)
    output = record.get("output")
    parts = [
        f'<article class="card {escape(_status_class(status))}" id="row-{index}" '
        f'style="--c:{colour}"><header><code>{escape(input_key(record))}</code>{_badge(status)}'
    ]
    if output is not None:
        parts.append(f'<span class="muted">→ <code>{escape(output)}</code></span>')
    parts.append("</header>")
    reasons = reason_pairs(record)
    if reasons:
        items = "".join(
            f"<li><code>{escape(code)}</code> {escape(text)}</li>" for code, text in reasons
        )
        parts.append(f'<ul class="reasons">{items}</ul>')
    parts.append(_figures_html(row, thumbs))
    parts.append(_details_html(record))
    parts.append("</article>")
    return "".join(parts)


# --------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------


def _filters_html(rows: Sequence[ReportRow]) -> str:
    """The status filter: one radio button per status (``other`` only when there are some)."""
    statuses = Counter(status_of(row.record) for row in rows)
    filters = [
        '<input type="radio" name="status-filter" id="f-all" checked>'
        f'<label for="f-all">all ({len(rows):,})</label>'
    ]
    others = sum(count for status, count in statuses.items() if status not in STATUSES)
    for status in (*STATUSES, "other"):
        count = others if status == "other" else statuses[status]
        if status == "other" and not count:
            continue
        filters.append(
            f'<input type="radio" name="status-filter" id="f-{status}">'
            f'<label for="f-{status}">{status} ({count:,})</label>'
        )
    return "".join(filters)


def write_html(
    path: Path,
    rows: Sequence[ReportRow],
    *,
    title: str = "pixelgate report",
    elapsed_s: float | None = None,
    transitions: Sequence[BreakerTransition] = (),
) -> None:
    """Write a self-contained ``report.html`` (summary, then one card per input, by path)."""
    ordered = sorted(rows, key=lambda row: input_key(row.record))
    thumbs = thumbnails(ordered)
    cards = "".join(_card_html(i, row, thumbs) for i, row in enumerate(ordered))
    document = (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{escape(CSP)}">'
        f'<meta name="referrer" content="no-referrer"><title>{escape(title)}</title>'
        f"<style>{CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1>"
        f'<p class="muted">{len(ordered):,} input files · pixelgate</p>'
        f"{_summary_html(ordered, elapsed_s, transitions)}"
        '<h2>Files</h2><section class="filters">'
        f'{_filters_html(ordered)}<div class="cards">'
        f"{cards or '<p class=muted>No input files.</p>'}</div></section>"
        "</body></html>\n"
    )
    atomic_write(path, document.encode("utf-8"))
