"""Run reports: ``report.jsonl`` (one line per input, the CLI contract) and ``report.html``.

``report.jsonl`` is for machines: one compact JSON object per input file, sorted by input path,
with the contract's keys in the contract's order (see ``CONTRACT_KEYS``)::

    {"input": ..., "status": "done"|"review"|"rejected"|"failed", "reasons": [{"code", "text"}],
     "route": {...}, "output": ..., "metrics": {...}, "timings_ms": {...}}

``report.html`` is for people: one self-contained file that opens from disk. A summary (counts by
status, elapsed time, mean and p95 latency per stage, a tally of reason codes, circuit-breaker
transitions), then one card per input: path, status, reasons, route, before/after/mask/candidate
thumbnails, metrics and timings. Thumbnails are embedded as base64 JPEG ``data:`` URIs; there is
no external CSS, JS, font or image, and a Content-Security-Policy forbids loading any. The status
filter is pure CSS (radio buttons), so the page reads fully without JavaScript.

File names and every other string come from uploads and are attacker-controlled, so all text
goes through ``html.escape``. Images are decoded only from ``ReportRow.before``, ``after``,
``mask`` and ``candidate``, which are pixelgate's own outputs, never raw uploads, and with
Pillow's default decompression-bomb limit; a file that fails to decode gets a placeholder,
never an exception.
"""

from __future__ import annotations

import base64
import html
import math
import os
import struct
import warnings
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path, PurePath
from typing import Any, Final

import numpy as np
import orjson
from PIL import Image

from schemas.reasons import ReasonCode

__all__ = [
    "CONTRACT_KEYS",
    "STATUSES",
    "THUMBNAIL_PX",
    "BreakerTransition",
    "ReportRow",
    "write_html",
    "write_jsonl",
    "write_reports",
]

CONTRACT_KEYS: Final = ("input", "status", "reasons", "route", "output", "metrics", "timings_ms")
"""The keys of one ``report.jsonl`` line, in the order they are written."""

STATUSES: Final = ("done", "review", "rejected", "failed")
"""Every terminal status a report line can have, in the order the summary lists them."""

THUMBNAIL_PX: Final = 240
"""Longest side of the embedded thumbnails, in pixels."""

_DEFAULTS: Final[Mapping[str, Any]] = {
    "reasons": (),
    "route": {},
    "output": None,
    "metrics": {},
    "timings_ms": {},
}
_STATUS_COLOURS: Final = {
    "done": "#1a7f37",
    "review": "#9a6700",
    "rejected": "#cf222e",
    "failed": "#6639ba",
}
_OTHER_COLOUR: Final = "#57606a"
# Everything a corrupt, truncated, hostile or missing image can raise while Pillow opens,
# decodes or thumbnails it. Programming errors (TypeError, AttributeError) still propagate.
_DECODE_ERRORS: Final = (
    OSError,  # missing file, unidentified format, truncated data
    ValueError,
    SyntaxError,  # Pillow's plugins signal malformed headers this way
    EOFError,
    IndexError,
    KeyError,
    MemoryError,
    struct.error,
    zlib.error,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


@dataclass(frozen=True, kw_only=True)
class ReportRow:
    """One input file's outcome, and the images that illustrate it in the HTML report."""

    record: Mapping[str, Any]
    """Exactly one ``report.jsonl`` line: ``input``, ``status``, ``reasons``, ``route``,
    ``output``, ``metrics``, ``timings_ms``."""
    before: Path | None
    """The normalized (preflight) image on disk; ``None`` for rejected or failed files. Never
    the raw upload: that may be hostile and is not decoded here."""
    after: Path | None
    """The final image on disk (status ``done``); ``None`` otherwise."""
    mask: Path | None
    """The removal mask on disk (255 = removed), if any."""
    candidate: Path | None = None
    """For ``review`` items: the candidate output the quality gate refused."""


@dataclass(frozen=True, kw_only=True)
class BreakerTransition:
    """One circuit-breaker state change, listed in the report's summary."""

    stage: str
    """The stage whose breaker changed state (``inpaint``, ``upscale``, ...)."""
    from_state: str
    """The state it left: ``CLOSED``, ``OPEN``, ``HALF_OPEN``, ``FORCED_OPEN``, ``DISABLED``."""
    to_state: str
    """The state it entered."""
    at: str
    """When, as an ISO 8601 timestamp."""
    failure_rate: float | None
    """The window's failure rate (0..1) that caused it; ``None`` for manual transitions."""
    vendor: str | None = None
    """The vendor scope, for per-vendor breakers; ``None`` = the stage's shared breaker."""
    reason: str = ""
    """Why, in a sentence (the window figures that caused it, or the operator's command)."""


# --------------------------------------------------------------------------------------------
# report.jsonl
# --------------------------------------------------------------------------------------------


def _json_default(value: object) -> object:
    if isinstance(value, PurePath):
        return value.as_posix()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    msg = f"cannot write {type(value).__name__} to report.jsonl; convert it to a JSON type first"
    raise TypeError(msg)


def _contract_line(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record with the contract keys first, in contract order; missing optional keys filled."""
    missing = [key for key in ("input", "status") if key not in record]
    if missing:
        msg = (
            f"report record is missing {missing}; every line needs at least 'input' and "
            f"'status' (got keys {sorted(record)})"
        )
        raise ValueError(msg)
    line = {key: record.get(key, _DEFAULTS.get(key)) for key in CONTRACT_KEYS}
    line.update((key, value) for key, value in record.items() if key not in line)
    return line


def _input_key(record: Mapping[str, Any]) -> str:
    value = record.get("input")
    return value.as_posix() if isinstance(value, PurePath) else str(value)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def write_jsonl(path: Path, records: Iterable[Mapping[str, Any]]) -> None:
    """Write ``report.jsonl``: one compact JSON object per record, sorted by ``input``.

    Keys follow ``CONTRACT_KEYS`` (extra keys come after, in their own order); a missing
    ``reasons``/``route``/``output``/``metrics``/``timings_ms`` is written as empty/null. NumPy
    scalars and paths are converted. The file is replaced atomically.
    """
    lines = sorted((_contract_line(record) for record in records), key=_input_key)
    option = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    data = b"".join(
        orjson.dumps(line, default=_json_default, option=option) + b"\n" for line in lines
    )
    _atomic_write(path, data)


# --------------------------------------------------------------------------------------------
# Thumbnails
# --------------------------------------------------------------------------------------------


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any decoded mode as 8-bit RGB; transparency shown over a light checkerboard."""
    if img.mode in {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}:
        arr = np.asarray(img, dtype=np.float32)
        top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        img = Image.fromarray(np.clip(arr * (255.0 / top), 0, 255).astype(np.uint8), "L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        rgba = img.convert("RGBA")
        board = np.full((rgba.height, rgba.width, 3), 255, np.uint8)
        yy, xx = np.mgrid[0 : rgba.height, 0 : rgba.width]
        board[((yy // 8) + (xx // 8)) % 2 == 1] = 220
        return Image.alpha_composite(Image.fromarray(board, "RGB").convert("RGBA"), rgba).convert(
            "RGB"
        )
    return img.convert("RGB")


def _thumbnail(path: Path, size: int = THUMBNAIL_PX) -> str:
    """A ``data:image/jpeg;base64,...`` thumbnail of ``path``; raises one of _DECODE_ERRORS."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, much faster
            img.thumbnail((size * 2, size * 2), Image.Resampling.BILINEAR, reducing_gap=None)
            thumb = _to_rgb(img)
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = BytesIO()
    thumb.save(buf, "JPEG", quality=80, optimize=False, progressive=False)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _safe_thumbnail(path: Path) -> tuple[str | None, str]:
    """``(data URI, "")``, or ``(None, why)`` when the image cannot be shown."""
    try:
        return _thumbnail(path), ""
    except _DECODE_ERRORS as exc:
        return None, f"{type(exc).__name__}: {exc}"[:300]


# --------------------------------------------------------------------------------------------
# Formatting helpers (every string goes through _e)
# --------------------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _fmt_number(value: float) -> str:
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "∞" if number > 0 else "−∞"
    magnitude = abs(number)
    if magnitude == 0:
        text = "0"
    elif magnitude >= 1000:
        text = f"{number:,.0f}"
    elif magnitude >= 100:
        text = f"{number:.1f}"
    elif magnitude >= 1:
        text = f"{number:.2f}"
    elif magnitude >= 1e-3:
        text = f"{number:.4f}"
    else:
        text = f"{number:.2e}"
    return text


def _fmt_ms(value: float) -> str:
    return f"{float(value):,.1f} ms" if math.isfinite(float(value)) else _fmt_number(value)


def _render_value(value: Any, depth: int = 0) -> str:
    """Any JSON-like value as escaped HTML: numbers formatted, mappings as definition lists."""
    if value is None:
        return '<span class="muted">—</span>'
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if _is_number(value):
        return f'<span class="num">{_e(_fmt_number(value))}</span>'
    if isinstance(value, str):
        return _e(value)
    if isinstance(value, PurePath):
        return f"<code>{_e(value.as_posix())}</code>"
    if depth > 6:  # deep nesting is shown flat rather than recursed into
        return _e(value)
    if isinstance(value, Mapping):
        if not value:
            return '<span class="muted">—</span>'
        items = "".join(
            f"<dt>{_e(key)}</dt><dd>{_render_value(item, depth + 1)}</dd>"
            for key, item in value.items()
        )
        return f'<dl class="kv">{items}</dl>'
    if isinstance(value, (list, tuple)):
        if not value:
            return '<span class="muted">—</span>'
        if all(not isinstance(item, (Mapping, list, tuple)) for item in value):
            return ", ".join(_render_value(item, depth + 1) for item in value)
        items = "".join(f"<li>{_render_value(item, depth + 1)}</li>" for item in value)
        return f'<ol class="plain">{items}</ol>'
    return _e(value)


def _status_of(record: Mapping[str, Any]) -> str:
    return str(record.get("status", ""))


def _status_class(status: str) -> str:
    return f"s-{status}" if status in STATUSES else "s-other"


def _badge(status: str) -> str:
    colour = _STATUS_COLOURS.get(status, _OTHER_COLOUR)
    return f'<span class="badge" style="background:{colour}">{_e(status or "unknown")}</span>'


def _reason_pairs(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(code, text)`` for each reason; text falls back to the ReasonCode sentence."""
    raw = record.get("reasons") or ()
    if isinstance(raw, (str, Mapping)):
        raw = [raw]
    pairs: list[tuple[str, str]] = []
    for reason in raw:
        if isinstance(reason, Mapping):
            code, text = str(reason.get("code", "")), str(reason.get("text") or "")
        else:
            code, text = str(reason), ""
        if not text and code in ReasonCode.__members__:
            text = ReasonCode[code].text
        pairs.append((code, text))
    return pairs


def _numeric_timings(record: Mapping[str, Any]) -> dict[str, float]:
    timings = record.get("timings_ms")
    if not isinstance(timings, Mapping):
        return {}
    return {
        str(stage): float(value)
        for stage, value in timings.items()
        if _is_number(value) and math.isfinite(float(value))
    }


# --------------------------------------------------------------------------------------------
# report.html
# --------------------------------------------------------------------------------------------

_CSS: Final = """
:root { color-scheme: light; --line: #d0d7de; --muted: #57606a; --bg: #f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       padding: 24px; color: #1f2328; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 24px 0 8px; }
code { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
       overflow-wrap: anywhere; }
.muted { color: var(--muted); }
.tiles { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.tile { border: 1px solid var(--line); border-left: 6px solid var(--c); border-radius: 6px;
        padding: 8px 14px; min-width: 120px; background: var(--bg); }
.tile b { display: block; font-size: 24px; color: var(--c); }
table { border-collapse: collapse; margin: 4px 0 8px; }
th, td { border: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: var(--bg); } td.num, .num { font-variant-numeric: tabular-nums; }
td.num { text-align: right; }
.badge { color: #fff; border-radius: 10px; padding: 1px 10px; font-size: 12px; font-weight: 600;
         white-space: nowrap; }
.filters { margin: 8px 0 16px; }
.filters input { position: absolute; opacity: 0; }
.filters label { display: inline-block; border: 1px solid var(--line); border-radius: 14px;
                 padding: 2px 12px; margin: 0 6px 6px 0; cursor: pointer; background: #fff; }
.filters input:checked + label { background: #1f2328; color: #fff; }
#f-done:checked ~ .cards .card:not(.s-done),
#f-review:checked ~ .cards .card:not(.s-review),
#f-rejected:checked ~ .cards .card:not(.s-rejected),
#f-failed:checked ~ .cards .card:not(.s-failed),
#f-other:checked ~ .cards .card:not(.s-other) { display: none; }
.card { border: 1px solid var(--line); border-left: 6px solid var(--c); border-radius: 6px;
        padding: 12px 16px; margin: 0 0 14px; }
.card header { display: flex; gap: 10px; align-items: baseline; flex-wrap: wrap; }
.card header code { font-size: 14px; font-weight: 600; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr));
        gap: 8px 24px; margin-top: 8px; }
.grid h3 { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted);
           margin: 8px 0 4px; }
.thumbs { display: flex; flex-wrap: wrap; gap: 10px; margin-top: 10px; }
figure { margin: 0; } figcaption { font-size: 12px; color: var(--muted); }
figure img { display: block; max-width: 240px; max-height: 240px; border: 1px solid var(--line);
             background: var(--bg); }
.placeholder { width: 240px; height: 120px; display: flex; align-items: center;
               justify-content: center; text-align: center; padding: 8px; font-size: 12px;
               color: var(--muted); border: 1px dashed var(--line); background: var(--bg);
               overflow-wrap: anywhere; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 0 12px; margin: 0; }
dl.kv dt { color: var(--muted); } dl.kv dd { margin: 0; }
ul.reasons, ol.plain { margin: 0; padding-left: 18px; }
.chips span { display: inline-block; background: var(--bg); border: 1px solid var(--line);
              border-radius: 4px; padding: 0 6px; margin: 0 2px 2px 0; }
"""

_CSP: Final = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'"


def _summary_html(
    rows: Sequence[ReportRow], elapsed_s: float | None, transitions: Sequence[BreakerTransition]
) -> str:
    statuses = Counter(_status_of(row.record) for row in rows)
    total = len(rows)
    parts = ['<section class="summary"><div class="tiles">']
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
            f'<div class="tile {_e(_status_class(status))}" style="--c:{colour}">'
            f"<b>{statuses[status]:,}</b>{_e(status or 'unknown')}</div>"
        )
    if elapsed_s is not None and math.isfinite(elapsed_s):
        rate = f"{total / elapsed_s:,.2f} files/s" if elapsed_s > 0 else ""
        parts.append(
            f'<div class="tile" style="--c:#0969da"><b>{elapsed_s:,.1f} s</b>'
            f"elapsed{' · ' + _e(rate) if rate else ''}</div>"
        )
    else:
        parts.append('<div class="tile" style="--c:#0969da"><b>—</b>elapsed</div>')
    parts.append("</div>")

    per_stage: dict[str, list[float]] = {}
    for row in rows:
        for stage, value in _numeric_timings(row.record).items():
            per_stage.setdefault(stage, []).append(value)
    parts.append("<h2>Time per stage</h2>")
    if per_stage:
        parts.append(
            '<table class="timings"><thead><tr><th>stage</th><th>files</th><th>mean</th>'
            "<th>p95</th><th>max</th></tr></thead><tbody>"
        )
        for stage, values in per_stage.items():
            arr = np.asarray(values, dtype=np.float64)
            parts.append(
                f'<tr><td>{_e(stage)}</td><td class="num">{len(values):,}</td>'
                f'<td class="num">{_e(_fmt_ms(float(arr.mean())))}</td>'
                f'<td class="num">{_e(_fmt_ms(float(np.percentile(arr, 95))))}</td>'
                f'<td class="num">{_e(_fmt_ms(float(arr.max())))}</td></tr>'
            )
        parts.append("</tbody></table>")
    else:
        parts.append('<p class="muted">No timings recorded.</p>')

    tally: Counter[str] = Counter()
    texts: dict[str, str] = {}
    for row in rows:
        for code, text in _reason_pairs(row.record):
            tally[code] += 1
            texts.setdefault(code, text)
    parts.append("<h2>Reasons</h2>")
    if tally:
        parts.append(
            '<table class="reasons"><thead><tr><th>code</th><th>files</th><th>meaning</th>'
            "</tr></thead><tbody>"
        )
        for code, count in sorted(tally.items(), key=lambda item: (-item[1], item[0])):
            parts.append(
                f'<tr><td><code>{_e(code)}</code></td><td class="num">{count:,}</td>'
                f"<td>{_e(texts.get(code, ''))}</td></tr>"
            )
        parts.append("</tbody></table>")
    else:
        parts.append('<p class="muted">No reasons: nothing was rejected or flagged.</p>')

    if transitions:
        parts.append(
            '<h2>Circuit breaker</h2><table class="breaker"><thead><tr><th>at</th><th>stage</th>'
            "<th>vendor</th><th>from</th><th>to</th><th>failure rate</th><th>why</th></tr>"
            "</thead><tbody>"
        )
        for tr in transitions:
            rate = "—" if tr.failure_rate is None else f"{tr.failure_rate:.1%}"
            parts.append(
                f"<tr><td>{_e(tr.at)}</td><td>{_e(tr.stage)}</td><td>{_e(tr.vendor or 'all')}"
                f"</td><td>{_e(tr.from_state)}</td><td>{_e(tr.to_state)}</td>"
                f'<td class="num">{_e(rate)}</td><td>{_e(tr.reason)}</td></tr>'
            )
        parts.append("</tbody></table>")
    parts.append("</section>")
    return "".join(parts)


def _route_html(route: Any) -> str:
    if not isinstance(route, Mapping):
        return _render_value(route)
    if not route:
        return '<span class="muted">—</span>'
    parts: list[str] = []
    stages = route.get("stages")
    rest: Mapping[str, Any] = route
    if isinstance(stages, (list, tuple)):
        chips = " → ".join(f"<span>{_e(stage)}</span>" for stage in stages) or (
            '<span class="muted">no stages</span>'
        )
        parts.append(f'<div class="chips">{chips}</div>')
        rest = {key: value for key, value in route.items() if key != "stages"}
    if rest:
        parts.append(_render_value(rest))
    return "".join(parts)


def _figure(label: str, thumb: tuple[str | None, str]) -> str:
    uri, why = thumb
    if uri is None:
        body = f'<div class="placeholder">image unavailable<br>{_e(why)}</div>'
    else:
        body = f'<img src="{_e(uri)}" alt="{_e(label)}" loading="lazy">'
    return f"<figure>{body}<figcaption>{_e(label)}</figcaption></figure>"


def _card_html(index: int, row: ReportRow, thumbs: Mapping[Path, tuple[str | None, str]]) -> str:
    record = row.record
    status = _status_of(record)
    colour = _STATUS_COLOURS.get(status, _OTHER_COLOUR)
    output = record.get("output")
    parts = [
        f'<article class="card {_e(_status_class(status))}" id="row-{index}" '
        f'style="--c:{colour}"><header><code>{_e(_input_key(record))}</code>{_badge(status)}'
    ]
    if output is not None:
        parts.append(f'<span class="muted">→ <code>{_e(output)}</code></span>')
    parts.append("</header>")

    reasons = _reason_pairs(record)
    if reasons:
        items = "".join(f"<li><code>{_e(code)}</code> {_e(text)}</li>" for code, text in reasons)
        parts.append(f'<ul class="reasons">{items}</ul>')

    images = [
        ("before", row.before),
        ("after", row.after),
        ("mask", row.mask),
        ("candidate", row.candidate),
    ]
    figures = [_figure(label, thumbs[path]) for label, path in images if path is not None]
    if figures:
        parts.append(f'<div class="thumbs">{"".join(figures)}</div>')
    else:
        parts.append('<p class="muted">No preview: the upload is never decoded for the report.</p>')

    timings = record.get("timings_ms")
    timing_html = (
        _render_value({k: _fmt_ms(v) if _is_number(v) else v for k, v in timings.items()})
        if isinstance(timings, Mapping)
        else _render_value(timings)
    )
    parts.append(
        '<div class="grid">'
        f"<div><h3>Route</h3>{_route_html(record.get('route'))}</div>"
        f"<div><h3>Metrics</h3>{_render_value(record.get('metrics'))}</div>"
        f"<div><h3>Timings</h3>{timing_html}</div>"
        "</div></article>"
    )
    return "".join(parts)


def _thumbnails(rows: Sequence[ReportRow]) -> dict[Path, tuple[str | None, str]]:
    paths = sorted(
        {
            path
            for row in rows
            for path in (row.before, row.after, row.mask, row.candidate)
            if path is not None
        },
        key=str,
    )
    workers = max(1, min(4, os.cpu_count() or 1, len(paths)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="thumb") as pool:
        return dict(zip(paths, pool.map(_safe_thumbnail, paths), strict=True))


def write_html(
    path: Path,
    rows: Sequence[ReportRow],
    *,
    title: str = "pixelgate report",
    elapsed_s: float | None = None,
    transitions: Sequence[BreakerTransition] = (),
) -> None:
    """Write a self-contained ``report.html`` (summary, then one card per input, by path)."""
    ordered = sorted(rows, key=lambda row: _input_key(row.record))
    thumbs = _thumbnails(ordered)
    statuses = Counter(_status_of(row.record) for row in ordered)
    filters = [
        '<input type="radio" name="status-filter" id="f-all" checked>'
        f'<label for="f-all">all ({len(ordered):,})</label>'
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
    cards = "".join(_card_html(i, row, thumbs) for i, row in enumerate(ordered))
    document = (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(_CSP)}">'
        f'<meta name="referrer" content="no-referrer"><title>{_e(title)}</title>'
        f"<style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1>"
        f'<p class="muted">{len(ordered):,} input files · pixelgate</p>'
        f"{_summary_html(ordered, elapsed_s, transitions)}"
        '<h2>Files</h2><section class="filters">'
        f'{"".join(filters)}<div class="cards">'
        f"{cards or '<p class=muted>No input files.</p>'}</div></section>"
        "</body></html>\n"
    )
    _atomic_write(path, document.encode("utf-8"))


def write_reports(
    out_dir: Path,
    rows: Sequence[ReportRow],
    *,
    title: str = "pixelgate report",
    elapsed_s: float | None = None,
    transitions: Sequence[BreakerTransition] = (),
) -> tuple[Path, Path]:
    """Write ``out_dir/report.jsonl`` and ``out_dir/report.html``; return both paths."""
    jsonl_path, html_path = out_dir / "report.jsonl", out_dir / "report.html"
    write_jsonl(jsonl_path, (row.record for row in rows))
    write_html(html_path, rows, title=title, elapsed_s=elapsed_s, transitions=transitions)
    return jsonl_path, html_path
