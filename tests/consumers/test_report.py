"""Tests for report.jsonl and the self-contained report.html (the consumers.report package)."""

from __future__ import annotations

import base64
import re
import struct
import zlib
from html.parser import HTMLParser
from io import BytesIO
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import orjson
import pytest
from PIL import Image

from consumers.report import (
    CONTRACT_KEYS,
    THUMBNAIL_PX,
    BreakerTransition,
    ReportRow,
    write_html,
    write_jsonl,
    write_reports,
)
from schemas.reasons import ReasonCode

EVIL = "<script>alert(1)</script>.jpg"
DATA_URI = 'src="data:image/jpeg;base64,'


def reason(code: ReasonCode) -> dict[str, str]:
    return {"code": code.value, "text": code.text}


def record(input_: str, status: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "input": input_,
        "status": status,
        "reasons": [],
        "route": {},
        "output": None,
        "metrics": {},
        "timings_ms": {},
    }
    base.update(fields)
    return base


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares width x height, with no pixel data at all."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload)
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small images of every kind the report may have to show, plus broken ones."""
    tmp_path = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:300, 0:480]
    photo = np.dstack([xx * 255 // 480, yy * 255 // 300, (xx + yy) % 256]).astype(np.uint8)
    paths = {name: tmp_path / name for name in ("before.jpg", "after.png", "mask.png")}
    Image.fromarray(photo, "RGB").save(paths["before.jpg"], quality=85)
    Image.fromarray(photo[:, ::-1].copy(), "RGB").save(paths["after.png"])
    mask = np.zeros((300, 480), np.uint8)
    mask[200:260, 40:300] = 255
    Image.fromarray(mask, "L").save(paths["mask.png"])
    rgba = np.dstack([photo, np.tile(np.linspace(0, 255, 480, dtype=np.uint8), (300, 1))])
    paths["candidate.png"] = tmp_path / "candidate.png"
    Image.fromarray(rgba, "RGBA").save(paths["candidate.png"])
    paths["gray16.png"] = tmp_path / "gray16.png"
    cv2.imwrite(str(paths["gray16.png"]), (mask.astype(np.uint16) * 257))
    paths["cmyk.jpg"] = tmp_path / "cmyk.jpg"
    Image.fromarray(photo, "RGB").convert("CMYK").save(paths["cmyk.jpg"])
    paths["palette.png"] = tmp_path / "palette.png"
    Image.fromarray(photo, "RGB").quantize(16).save(paths["palette.png"], transparency=0)
    paths["broken.png"] = tmp_path / "broken.png"
    paths["broken.png"].write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(300))
    paths["truncated.jpg"] = tmp_path / "truncated.jpg"
    full = paths["before.jpg"].read_bytes()
    paths["truncated.jpg"].write_bytes(full[: len(full) // 3])
    paths["missing.png"] = tmp_path / "does-not-exist.png"
    paths["bomb_warn.png"] = png_header_only(tmp_path / "bomb_warn.png", 10_000, 10_000)
    paths["bomb_error.png"] = png_header_only(tmp_path / "bomb_error.png", 30_000, 30_000)
    return paths


@pytest.fixture
def rows(images: dict[str, Path]) -> list[ReportRow]:
    done = record(
        "vendor02/sku0002/front.jpg",
        "done",
        route={"stages": ["inpaint"], "why": {"inpaint": "text found: 3 boxes, 2.1 % of pixels"}},
        output="vendor02/sku0002/front.png",
        metrics={"psnr_outside": 48.123456, "ssim_outside": 0.998765, "text_pixels": 12345},
        timings_ms={"preflight": 10.0, "detect": 40.0, "inpaint": 200.0},
    )
    review = record(
        "vendor01/sku0001/side.jpg",
        "review",
        reasons=[reason(ReasonCode.SEAM_VISIBLE)],
        route={"stages": ["inpaint", "upscale"], "why": "caption + small"},
        metrics={"seam_score": 0.31},
        timings_ms={"preflight": 20.0, "detect": 60.0, "inpaint": 400.0},
    )
    rejected = record(
        EVIL,
        "rejected",
        reasons=[reason(ReasonCode.TOO_SMALL)],
        timings_ms={"preflight": 30.0},
    )
    failed = record(
        "vendor03/sku0003/back.jpg",
        "failed",
        reasons=[{"code": "PROCESSING_FAILED", "text": ""}],  # text filled from the enum
        timings_ms={"preflight": 40.0},
    )
    missing = record(
        "vendor04/sku0004/top.jpg", "done", output="vendor04/sku0004/top.png", metrics={}
    )
    return [
        ReportRow(
            record=done,
            before=images["before.jpg"],
            after=images["after.png"],
            mask=images["mask.png"],
        ),
        ReportRow(
            record=review,
            before=images["cmyk.jpg"],
            after=None,
            mask=images["gray16.png"],
            candidate=images["candidate.png"],
        ),
        ReportRow(record=rejected, before=None, after=None, mask=None),
        ReportRow(record=failed, before=images["broken.png"], after=None, mask=None),
        ReportRow(
            record=missing,
            before=images["palette.png"],
            after=images["missing.png"],
            mask=None,
        ),
    ]


def html_of(path: Path, rows: list[ReportRow], **kwargs: Any) -> str:
    write_html(path, rows, **kwargs)
    return path.read_text(encoding="utf-8")


class TagBalance(HTMLParser):
    """Checks that every non-void element is closed, in order."""

    VOID = frozenset({"meta", "input", "img", "br", "hr", "link"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


# ------------------------------------------------------------------------------ report.jsonl


def test_jsonl_one_line_per_row_in_contract_order_sorted_by_input(
    tmp_path: Path, rows: list[ReportRow]
) -> None:
    path = tmp_path / "report.jsonl"
    write_jsonl(path, [row.record for row in rows])
    lines = path.read_bytes().splitlines()
    assert len(lines) == len(rows)
    parsed = [orjson.loads(line) for line in lines]
    assert all(list(line) == list(CONTRACT_KEYS) for line in parsed)
    inputs = [line["input"] for line in parsed]
    assert inputs == sorted(row.record["input"] for row in rows)
    assert b" " not in lines[2].split(b'"reasons"')[0]  # compact separators
    assert parsed[0]["input"] == EVIL  # JSON keeps the name verbatim; only HTML escapes


def test_jsonl_fills_optional_keys_converts_values_and_keeps_extras_last(tmp_path: Path) -> None:
    path = tmp_path / "report.jsonl"
    records: list[dict[str, Any]] = [
        {"extra": 1, "status": "done", "input": "b.jpg", "output": Path("out/b.png")},
        {"input": "a.jpg", "status": "done", "metrics": {"psnr": np.float32(41.5)}},
    ]
    write_jsonl(path, records)
    first, second = (orjson.loads(line) for line in path.read_bytes().splitlines())
    assert first == {
        "input": "a.jpg",
        "status": "done",
        "reasons": [],
        "route": {},
        "output": None,
        "metrics": {"psnr": 41.5},
        "timings_ms": {},
    }
    assert list(second) == [*CONTRACT_KEYS, "extra"]
    assert second["output"] == "out/b.png"
    assert not list(tmp_path.glob(".*.tmp"))


def test_jsonl_rejects_a_record_without_input_or_status(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'input' and 'status'"):
        write_jsonl(tmp_path / "report.jsonl", [{"input": "a.jpg"}])


# ------------------------------------------------------------------------------ report.html


def test_html_is_one_self_contained_file(tmp_path: Path, rows: list[ReportRow]) -> None:
    page = html_of(tmp_path / "report.html", rows, elapsed_s=12.5)
    assert [p.name for p in tmp_path.glob("report*")] == ["report.html"]
    assert "http://" not in page
    assert "https://" not in page
    assert 'src="/' not in page
    references = re.findall(r"""(?:src|href|action|srcset)\s*=\s*["']?([^"'\s>]*)""", page)
    assert references
    assert all(ref.startswith("data:") for ref in references), references
    assert "<script" not in page.lower()
    assert "<link" not in page.lower()
    assert "url(" not in page
    assert "@import" not in page
    assert "Content-Security-Policy" in page
    checker = TagBalance()
    checker.feed(page)
    assert checker.errors == []
    assert checker.stack == []


def test_html_escapes_attacker_controlled_strings(tmp_path: Path, rows: list[ReportRow]) -> None:
    evil_row = ReportRow(
        record=record(
            'vendor"><img src=x onerror=alert(2)>/a.jpg',
            "<b>done</b>",
            reasons=[{"code": "<i>X</i>", "text": "<script>alert(3)</script>"}],
            route={"stages": ["<svg onload=alert(4)>"], "<k>": "<v>"},
            metrics={"<m>": "<script>"},
            timings_ms={"<t>": 1.0},
        ),
        before=None,
        after=None,
        mask=None,
    )
    page = html_of(tmp_path / "report.html", [*rows, evil_row], title="<title>x</title>")
    assert EVIL not in page
    assert html_escaped(EVIL) in page
    for needle in ("<script", "<img src=x", "<svg", "<i>X</i>", "<b>done</b>", "<k>", "<m>"):
        assert needle not in page, needle
    assert "&lt;svg onload=alert(4)&gt;" in page
    assert "<title>&lt;title&gt;x&lt;/title&gt;</title>" in page


def html_escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def test_html_summary_counts_timings_and_reasons(tmp_path: Path, rows: list[ReportRow]) -> None:
    page = html_of(tmp_path / "report.html", rows, elapsed_s=12.5)
    assert "<b>5</b>files" in page
    for status, count in {"done": 2, "review": 1, "rejected": 1, "failed": 1}.items():
        assert f"<b>{count}</b>{status}</div>" in page, status
        assert f'<label for="f-{status}">{status} ({count})</label>' in page
    assert "12.5 s" in page
    # preflight: 10, 20, 30, 40 ms -> mean 25, p95 38.5 (linear); inpaint: 200, 400.
    preflight = re.search(r"<tr><td>preflight</td>(.*?)</tr>", page)
    assert preflight is not None
    assert re.findall(r">([\d.,]+ ms)<", preflight.group(1)) == ["25.0 ms", "38.5 ms", "40.0 ms"]
    assert '<td>inpaint</td><td class="num">2</td><td class="num">300.0 ms</td>' in page
    for code in (ReasonCode.SEAM_VISIBLE, ReasonCode.TOO_SMALL, ReasonCode.PROCESSING_FAILED):
        assert f"<code>{code.value}</code>" in page
        assert html_escaped(code.text).replace('"', "&quot;") in page
    assert "48.12" in page  # metrics formatted, not 48.123456
    assert "48.123456" not in page
    assert "12,345" in page
    assert "text found: 3 boxes" in page


def test_html_cards_are_sorted_by_input(tmp_path: Path, rows: list[ReportRow]) -> None:
    page = html_of(tmp_path / "report.html", rows)
    order = re.findall(
        r'<article class="card [^"]*" id="row-\d+"[^>]*><header><code>(.*?)</code>', page
    )
    assert order == sorted(html_escaped(row.record["input"]) for row in rows)


def test_html_embeds_thumbnails_and_survives_broken_images(
    tmp_path: Path, rows: list[ReportRow]
) -> None:
    page = html_of(tmp_path / "report.html", rows)
    # decodable: before/after/mask, cmyk/gray16/rgba candidate, palette -> 7; broken + missing -> 2
    assert page.count(DATA_URI) == 7
    assert page.count('class="placeholder"') == 2
    assert "FileNotFoundError" in page
    for encoded in re.findall(r'src="data:image/jpeg;base64,([^"]+)"', page):
        with Image.open(BytesIO(base64.b64decode(encoded))) as thumb:
            assert thumb.format == "JPEG"
            assert max(thumb.size) <= THUMBNAIL_PX


def test_html_placeholders_for_decompression_bombs_and_truncated_files(
    tmp_path: Path, images: dict[str, Path]
) -> None:
    hostile = [
        ReportRow(
            record=record(f"{name}.jpg", "failed"), before=images[name], after=None, mask=None
        )
        for name in ("bomb_warn.png", "bomb_error.png", "truncated.jpg", "broken.png")
    ]
    page = html_of(tmp_path / "report.html", hostile)
    assert page.count('class="placeholder"') == 4
    assert page.count(DATA_URI) == 0
    assert "DecompressionBomb" in page
    assert Image.MAX_IMAGE_PIXELS is not None  # untouched


def test_html_breaker_transitions_and_empty_report(tmp_path: Path) -> None:
    transitions = [
        BreakerTransition(
            stage="inpaint",
            from_state="CLOSED",
            to_state="OPEN",
            at="2026-03-15T10:00:00Z",
            failure_rate=0.625,
        ),
        BreakerTransition(
            stage="<inpaint>", from_state="OPEN", to_state="HALF_OPEN", at="t", failure_rate=None
        ),
    ]
    page = html_of(tmp_path / "report.html", [], transitions=transitions)
    assert "Circuit breaker" in page
    assert "62.5%" in page
    assert "&lt;inpaint&gt;" in page
    assert "<b>0</b>files" in page
    assert "No input files." in page
    assert "Circuit breaker" not in html_of(tmp_path / "plain.html", [])


def test_write_reports_writes_both_files_deterministically(
    tmp_path: Path, rows: list[ReportRow]
) -> None:
    out = tmp_path / "out"
    jsonl_path, html_path = write_reports(out, rows, title="run 1", elapsed_s=3.0)
    assert (jsonl_path, html_path) == (out / "report.jsonl", out / "report.html")
    assert len(jsonl_path.read_bytes().splitlines()) == len(rows)
    first = (jsonl_path.read_bytes(), html_path.read_bytes())
    write_reports(out, list(reversed(rows)), title="run 1", elapsed_s=3.0)
    assert (jsonl_path.read_bytes(), html_path.read_bytes()) == first
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.jsonl"]
