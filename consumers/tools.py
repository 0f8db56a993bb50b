"""Single-stage commands over files: preflight, detect-text, remove-text, inpaint, upscale.

They call the same processors as the pipeline, in micro-batches, without a transport, built from
the same settings (:mod:`consumers.configs`: ``PIXELGATE_DEVICE``, ``PIXELGATE_INPAINT_METHOD``,
...). Inputs are decoded through preflight (bytes sniffed, bombs refused, orientation and colour
normalized) with a permissive *tool policy* that keeps the input's geometry, so masks line up
with the inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consumers.codec import decode_mask, encode_mask, encode_png
from consumers.configs import inpaint_config, text_config, text_removal, upscale_config
from consumers.report import write_jsonl
from consumers.settings import Settings
from consumers.uploads import InputFile
from processors.inpaint import Inpainter
from processors.preflight import Preflight, PreflightPolicy, PreflightResult
from processors.removal import TextRemoval
from processors.tensors import Image, Mask
from processors.text import TextDetector
from processors.upscale import Upscaler
from schemas.reasons import ReasonCode

__all__ = [
    "TOOL_POLICY",
    "ToolSummary",
    "detect_text",
    "inpaint",
    "preflight",
    "remove_text",
    "upscale",
]

TOOL_POLICY = PreflightPolicy(
    min_side=8, max_aspect_ratio=1000.0, target_max_side=20_000, blank_std=0.0, blur_threshold=0.0
)
"""Preflight for the single-stage tools: same safety checks, no size band or content gates."""

_BATCH = 8


@dataclass
class ToolSummary:
    """Counts and per-file outcomes of a tool run."""

    done: int = 0
    rejected: int = 0
    details: list[dict[str, Any]] = field(default_factory=list)

    def add(self, name: str, status: str, output: str | None, **extra: Any) -> None:
        """Record one file's outcome."""
        if status == "done":
            self.done += 1
        else:
            self.rejected += 1
        self.details.append({"input": name, "status": status, "output": output, **extra})


def _batches(files: Sequence[InputFile]) -> Iterator[Sequence[InputFile]]:
    for start in range(0, len(files), _BATCH):
        yield files[start : start + _BATCH]


def _decode(batch: Sequence[InputFile], gate: Preflight) -> list[PreflightResult]:
    return gate([item.path.read_bytes() for item in batch])


def _out_path(out: Path, name: str) -> Path:
    target = out / Path(name).with_suffix(".png")
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


Tick = Callable[[], None]


def _done(
    summary: ToolSummary, out: Path, name: str, png: bytes, tick: Tick, **extra: Any
) -> None:
    """Write ``OUT/<name>.png``, record the file as done and advance the progress bar."""
    target = _out_path(out, name)
    target.write_bytes(png)
    summary.add(name, "done", target.relative_to(out).as_posix(), **extra)
    tick()


def _reasons(result: PreflightResult) -> list[dict[str, str]]:
    return [{"code": c.value, "text": c.text} for c in result.reasons]


def _each_image(
    files: Sequence[InputFile], summary: ToolSummary, tick: Tick, gate: Preflight
) -> Iterator[tuple[list[InputFile], list[Image]]]:
    """Decode each batch safely; rejected files are recorded and skipped."""
    for batch in _batches(files):
        kept: list[InputFile] = []
        images: list[Image] = []
        for item, result in zip(batch, _decode(batch, gate), strict=True):
            if result.image is None:
                summary.add(item.name, "rejected", None, reasons=_reasons(result))
                tick()
            else:
                kept.append(item)
                images.append(result.image)
        if kept:
            yield kept, images


def preflight(
    files: Sequence[InputFile], out: Path, tick: Tick, policy: PreflightPolicy | None = None
) -> ToolSummary:
    """Normalize every file to ``OUT/<name>.png``; write ``OUT/report.jsonl``."""
    gate = Preflight(policy)
    summary = ToolSummary()
    records = []
    for batch in _batches(files):
        for item, result in zip(batch, _decode(batch, gate), strict=True):
            output = None
            if result.image is not None:
                target = _out_path(out, item.name)
                target.write_bytes(encode_png(result.image, result.alpha))
                output = target.relative_to(out).as_posix()
            status = "done" if result.accepted else "rejected"
            summary.add(item.name, status, output, reasons=_reasons(result))
            records.append(
                {
                    "input": item.name,
                    "status": status,
                    "reasons": _reasons(result),
                    "route": {},
                    "output": output,
                    "metrics": {},
                    "timings_ms": {},
                    "preflight": result.report.to_dict(),
                }
            )
            tick()
    write_jsonl(out / "report.jsonl", records)
    return summary


def detect_text(
    files: Sequence[InputFile], out: Path, tick: Tick, *, settings: Settings
) -> ToolSummary:
    """Write ``OUT/<name>.png`` masks (255 = text)."""
    detector = TextDetector(text_config(settings))
    summary = ToolSummary()
    for kept, images in _each_image(files, summary, tick, Preflight(TOOL_POLICY)):
        for item, result in zip(kept, detector(images), strict=True):
            _done(summary, out, item.name, encode_mask(result.mask), tick,
                  text_lines=len(result.boxes), coverage=round(result.coverage, 5))
    return summary


def remove_text(
    files: Sequence[InputFile], out: Path, tick: Tick, *, settings: Settings
) -> ToolSummary:
    """Detect text and write ``OUT/<name>.png`` with it removed, as the inpaint stage removes it
    (:class:`processors.removal.TextRemoval`)."""
    detector = TextDetector(text_config(settings))
    removal = text_removal(settings)
    summary = ToolSummary()
    for kept, images in _each_image(files, summary, tick, Preflight(TOOL_POLICY)):
        masks = [
            TextRemoval.regions(image, r.mask).fill
            for image, r in zip(images, detector(images), strict=True)
        ]
        results = removal(images, masks)
        for item, edited, mask in zip(kept, results, masks, strict=True):
            _done(summary, out, item.name, encode_png(edited), tick,
                  masked=round(float((mask > 0).mean()), 5))
    return summary


def inpaint(
    files: Sequence[InputFile], masks: Path, out: Path, tick: Tick, *, settings: Settings
) -> ToolSummary:
    """Fill ``masks`` (one mask file, or a folder of ``<stem>.png``) in every input."""
    inpainter = Inpainter(inpaint_config(settings))
    summary = ToolSummary()
    for kept, images in _each_image(files, summary, tick, Preflight(TOOL_POLICY)):
        ready: list[tuple[InputFile, Image, Mask]] = []
        for item, image in zip(kept, images, strict=True):
            mask_file = masks if masks.is_file() else masks / Path(item.name).with_suffix(".png")
            if not mask_file.is_file():
                summary.add(item.name, "rejected", None, reasons=[
                    {"code": ReasonCode.SOURCE_MISSING.value, "text": f"no mask at {mask_file}"}])
                tick()
                continue
            ready.append((item, image, decode_mask(mask_file.read_bytes(), image.shape[:2])))
        if not ready:
            continue
        edited = inpainter([r[1] for r in ready], [r[2] for r in ready])
        for (item, _, _), result in zip(ready, edited, strict=True):
            _done(summary, out, item.name, encode_png(result), tick)
    return summary


def upscale(
    files: Sequence[InputFile], scale: int, out: Path, tick: Tick, *, settings: Settings
) -> ToolSummary:
    """Write ``OUT/<name>.png`` upscaled ×``scale``."""
    upscaler = Upscaler(upscale_config(settings))
    summary = ToolSummary()
    for kept, images in _each_image(files, summary, tick, Preflight(TOOL_POLICY)):
        for item, result in zip(kept, upscaler(images, scale=scale), strict=True):
            _done(summary, out, item.name, encode_png(result), tick,
                  size=f"{result.shape[1]}x{result.shape[0]}")
    return summary
