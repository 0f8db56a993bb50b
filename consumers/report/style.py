"""The report page's stylesheet and Content-Security-Policy.

The page loads nothing: no external CSS, JS, font or image, and the policy forbids loading any.
The status filter is pure CSS (radio buttons), so the page reads fully without JavaScript.
"""

from __future__ import annotations

from typing import Final

__all__ = ["CSP", "CSS"]

CSS: Final = """
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
"""The page's stylesheet, inlined in a ``<style>`` element."""

CSP: Final = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'"
"""The Content-Security-Policy of the page: data: images and inline styles only."""
