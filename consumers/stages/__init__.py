"""The stage graph: preflight → route → inpaint / upscale → finalize, with terminal topics.

Every stage is listed here, in one module (no import-time registries)::

    uploaded ─► preflight ─┬─► rejected                                   (terminal)
                           └─► preflight ─► route ─► routed ─┬─► inpaint ─► inpainted ─┐
                                                             ├─► upscale ◄─────────────┤
                                                             │      └─► upscaled ──────┤
                                                             └─► finalize ◄────────────┘
                                                                    └─► results       (terminal)
    any gate that fails ─► review (terminal);  anything unreadable ─► dlq (terminal)

Each internal event names its ``next_stage``; a stage consumes every topic that can feed it and
skips records meant for another stage. Object keys are deterministic,
``<prefix>/<image id>/<stage>.png``, so a replayed record rewrites identical objects. Every
stage publishes one ``metrics`` event per item.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ValidationError

from consumers.breaker import BreakerBoard, BreakerState
from consumers.codec import decode_image, decode_mask, encode_mask, encode_png
from consumers.errors import BreakerOpenError, PoisonRecordError
from consumers.runner import Loaded, Output, Stage
from consumers.settings import GateKnobs, Settings
from consumers.store import Store
from processors.inpaint import InpaintConfig, Inpainter, edit_region
from processors.preflight import Preflight, PreflightPolicy, PreflightResult
from processors.quality import measure_edits, measure_upscales
from processors.tensors import Image, Mask
from processors.text import TextDetector, TextDetectorConfig
from processors.unblend import Unblender
from processors.upscale import UpscaleConfig, Upscaler, plan_scale, resize_long_side
from schemas.events import (
    CloudEvent,
    ImageRef,
    InpaintedData,
    ItemContext,
    MetricsData,
    PreflightData,
    Reason,
    RejectedData,
    ResultData,
    ReviewData,
    RoutedData,
    RouteDecision,
    Topic,
    Trail,
    UploadedEvent,
    UpscaledData,
    event_type,
)
from schemas.reasons import ReasonCode

__all__ = [
    "STAGE_NAMES",
    "FinalizeStage",
    "InpaintStage",
    "PreflightStage",
    "RouteStage",
    "UpscaleStage",
    "build_stages",
    "edit_gate",
    "inpaint_config",
    "upscale_config",
    "upscale_gate",
]

STAGE_NAMES = ("preflight", "route", "inpaint", "upscale", "finalize")
_NAMESPACE = uuid.UUID("6f1d3c2e-5a4b-4f0e-9c8d-7b6a5f4e3d2c")
_PNG = "image/png"

NextStage = Literal["inpaint", "upscale", "finalize"]


# -- shared helpers ---------------------------------------------------------------------------


def _event(source: CloudEvent[Any], stage: str, topic: Topic, data: BaseModel) -> CloudEvent[Any]:
    """A derived event: same subject (image id), deterministic id, typed data."""
    return CloudEvent[Any](
        id=str(uuid.uuid5(_NAMESPACE, f"{source.subject}/{stage}/{topic.value}")),
        source=f"pixelgate/{stage}",
        type=event_type(topic),
        subject=source.subject,
        time=datetime.now(UTC),
        data=data,
    )


def _parse(model: type[BaseModel], value: bytes) -> CloudEvent[Any]:
    try:
        return CloudEvent[model].model_validate_json(value)  # type: ignore[valid-type]
    except ValidationError as exc:
        raise PoisonRecordError(f"event does not match {model.__name__}: {exc}") from None


def _metrics(
    source: CloudEvent[Any],
    stage: str,
    vendor_id: str,
    outcome: Literal["pass", "fail", "error", "rejected", "skipped"],
    latency_ms: float,
    batch_size: int,
    figures: dict[str, float | None] | None = None,
    *,
    trial: bool = False,
) -> tuple[Topic, CloudEvent[Any]]:
    data = MetricsData(
        stage=stage,
        vendor_id=vendor_id,
        outcome=outcome,
        figures=figures or {},
        latency_ms=round(latency_ms, 3),
        batch_size=batch_size,
        trial=trial,
    )
    return Topic.METRICS, _event(source, stage, Topic.METRICS, data)


def _share_ms(items: Sequence[Loaded[Any]], started: float) -> list[float]:
    """Each item's time in the stage: its own load time plus an equal share of the batch."""
    batch_ms = (time.perf_counter() - started) * 1000.0 / max(len(items), 1)
    return [item.load_ms + batch_ms for item in items]


def _next(stages: Sequence[str], after: str | None) -> NextStage:
    """The stage after ``after`` (None: the first) among the routed stages, else finalize."""
    order: list[NextStage] = [s for s in ("inpaint", "upscale") if s in stages]
    rest = order if after is None else order[order.index(after) + 1 :] if after in order else []
    return rest[0] if rest else "finalize"


@dataclass(frozen=True)
class _Keys:
    bucket: str
    prefix: str

    def ref(self, image_id: str, name: str) -> ImageRef:
        return ImageRef(bucket=self.bucket, key=f"{self.prefix}/{image_id}/{name}")


def _keys(settings: Settings) -> _Keys:
    return _Keys(settings.output_bucket, settings.output_prefix.strip("/"))


def _trail(trail: Trail, stage: str, ms: float, **updates: Any) -> Trail:
    timings = {**trail.timings_ms, stage: round(ms, 3)}
    return trail.model_copy(update={"timings_ms": timings, **updates})


@dataclass(frozen=True)
class _Admission:
    """Which items of a batch the stage's circuit breaker lets through."""

    allowed: tuple[bool, ...]
    """Per item: edit it (True) or send it to review untouched (False)."""
    trial: tuple[bool, ...]
    """Per item: admitted as a half-open trial."""


_CLOSED_TO_EDITS = (BreakerState.OPEN, BreakerState.FORCED_OPEN)


def _admit(board: BreakerBoard | None, stage: str, vendors: Sequence[str]) -> _Admission:
    """Ask the breaker about each item, in order. With the ``pause`` policy an open scope raises
    :class:`BreakerOpenError` before any half-open permit is taken: the runner then holds the
    batch (partitions paused, nothing committed) and retries it with backoff."""
    policy = board.policy(stage) if board is not None else None
    if board is None or policy is None:
        return _Admission((True,) * len(vendors), (False,) * len(vendors))
    states = [board.state(stage, vendor) for vendor in vendors]
    if policy.when_open == "pause":
        blocked = sorted({v for v, st in zip(vendors, states, strict=True)
                          if st in _CLOSED_TO_EDITS})
        if blocked:
            raise BreakerOpenError(
                f"{stage}: circuit breaker open for vendor(s) {', '.join(blocked)}; "
                "holding the batch until it half-opens"
            )
    allowed = tuple(board.allow(stage, vendor) for vendor in vendors)
    trial = tuple(
        ok and st is BreakerState.HALF_OPEN for ok, st in zip(allowed, states, strict=True)
    )
    return _Admission(allowed, trial)


def _held_for_review(
    item: Loaded[Any], stage: str, ms: float, size: int, mask: ImageRef | None
) -> Output:
    """An item the open breaker keeps from being edited: to review, untouched."""
    data = item.event.data
    review = ReviewData(
        context=data.context, stage=stage, reasons=[Reason.of(ReasonCode.BREAKER_OPEN)],
        original=data.context.original, candidate=None, mask=mask,
        trail=_trail(data.trail, stage, ms),
    )
    return Output(
        outcome="held",
        events=(
            (Topic.REVIEW, _event(item.event, stage, Topic.REVIEW, review)),
            _metrics(item.event, stage, data.context.vendor_id, "skipped", ms, size),
        ),
    )


# -- preflight --------------------------------------------------------------------------------


class PreflightStage:
    """uploaded → preflight (normalized PNG) or rejected (reason codes)."""

    name = "preflight"
    consumes = (Topic.UPLOADED,)

    def __init__(self, settings: Settings) -> None:
        self.keys = _keys(settings)
        base = PreflightPolicy().with_overrides(settings.preflight)
        self.default = Preflight(base)
        self.by_vendor = {
            vendor: Preflight(base.with_overrides(overrides))
            for vendor, overrides in settings.vendor_preflight.items()
        }

    def parse(self, topic: Topic, value: bytes) -> CloudEvent[Any] | None:  # noqa: ARG002
        try:
            return UploadedEvent.model_validate_json(value)
        except ValidationError as exc:
            raise PoisonRecordError(f"invalid upload event: {exc}") from None

    def load(self, event: CloudEvent[Any], store: Store) -> bytes:
        return store.get(event.data.image)

    def process(self, items: Sequence[Loaded[bytes]]) -> list[Output]:
        started = time.perf_counter()
        results: list[PreflightResult | None] = [None] * len(items)
        groups: dict[str, list[int]] = {}
        for index, item in enumerate(items):
            groups.setdefault(item.event.data.vendor_id, []).append(index)
        for vendor, indices in groups.items():
            processor = self.by_vendor.get(vendor, self.default)
            for index, result in zip(
                indices, processor([items[i].payload for i in indices]), strict=True
            ):
                results[index] = result
        shares = _share_ms(items, started)
        return [
            self._output(item, result, ms, len(items))
            for item, result, ms in zip(items, results, shares, strict=True)
            if result is not None
        ]

    def _output(
        self, item: Loaded[bytes], result: PreflightResult, ms: float, size: int
    ) -> Output:
        event = item.event
        data = event.data
        context = ItemContext(
            vendor_id=data.vendor_id,
            sku=data.sku,
            operations=data.operations,
            original=data.image,
        )
        trail = Trail(
            preflight=result.report.to_dict(),
            timings_ms={self.name: round(ms, 3)},
            models={self.name: self.default.version},
        )
        if not result.accepted:
            rejected = RejectedData(
                context=context, reasons=[Reason.of(c) for c in result.reasons], trail=trail
            )
            return Output(
                outcome="rejected",
                events=(
                    (Topic.REJECTED, _event(event, self.name, Topic.REJECTED, rejected)),
                    _metrics(event, self.name, data.vendor_id, "rejected", ms, size),
                ),
            )
        if result.image is None:
            raise ValueError("preflight accepted an image but returned no pixels")
        image_ref = self.keys.ref(event.subject, "preflight.png")
        objects = [(image_ref, encode_png(result.image), _PNG)]
        alpha_ref = None
        if result.alpha is not None:
            alpha_ref = self.keys.ref(event.subject, "alpha.png")
            objects.append((alpha_ref, encode_mask(result.alpha), _PNG))
        out = PreflightData(context=context, image=image_ref, alpha=alpha_ref, trail=trail)
        return Output(
            outcome="pass",
            objects=tuple(objects),
            events=(
                (Topic.PREFLIGHT, _event(event, self.name, Topic.PREFLIGHT, out)),
                _metrics(event, self.name, data.vendor_id, "pass", ms, size),
            ),
        )


# -- route ------------------------------------------------------------------------------------


class RouteStage:
    """preflight → routed: detect text, decide which stages the image needs, and why."""

    name = "route"
    consumes = (Topic.PREFLIGHT,)

    def __init__(self, settings: Settings) -> None:
        self.keys = _keys(settings)
        self.detector = TextDetector(text_config(settings))

    def parse(self, topic: Topic, value: bytes) -> CloudEvent[Any] | None:  # noqa: ARG002
        return _parse(PreflightData, value)

    def load(self, event: CloudEvent[Any], store: Store) -> Image:
        return decode_image(store.get(event.data.image))

    def process(self, items: Sequence[Loaded[Image]]) -> list[Output]:
        started = time.perf_counter()
        wanted = [i for i, it in enumerate(items) if it.event.data.context.operations.remove_text
                  != "off"]
        detections = dict(
            zip(wanted, self.detector([items[i].payload for i in wanted]), strict=True)
        )
        shares = _share_ms(items, started)
        outputs = []
        for index, (item, ms) in enumerate(zip(items, shares, strict=True)):
            data: PreflightData = item.event.data
            ops = data.context.operations
            detection = detections.get(index)
            stages: list[Literal["inpaint", "upscale"]] = []
            why: list[str] = []
            objects: list[tuple[ImageRef, bytes, str]] = []
            mask_ref = None
            if ops.remove_text == "off":
                why.append("text removal off by request")
            elif detection is not None and detection.found:
                mask_ref = self.keys.ref(item.event.subject, "text-mask.png")
                objects.append((mask_ref, encode_mask(detection.mask), _PNG))
                stages.append("inpaint")
                why.append(
                    f"text detected: {len(detection.boxes)} line(s), "
                    f"{detection.coverage:.2%} of the image"
                )
            else:
                why.append("no text detected")
            if ops.object_mask is not None and "inpaint" not in stages:
                stages.append("inpaint")
                why.append("object mask supplied")
            elif ops.object_mask is not None:
                why.append("object mask supplied")
            height, width = item.payload.shape[:2]
            scale = None
            if ops.upscale_to is not None and ops.upscale_to > max(height, width):
                scale = plan_scale(height, width, ops.upscale_to)
                stages.append("upscale")
                why.append(f"long side {max(height, width)} px < requested {ops.upscale_to} px")
            elif ops.upscale_to is not None:
                why.append(f"already {max(height, width)} px >= requested {ops.upscale_to} px")
            decision = RouteDecision(
                stages=stages,
                why=why,
                text_found=bool(detection is not None and detection.found),
                text_coverage=round(detection.coverage, 6) if detection is not None else 0.0,
                text_boxes=list(detection.boxes) if detection is not None else [],
                upscale_scale=scale,
                upscale_to=ops.upscale_to if scale else None,
            )
            trail = _trail(
                data.trail,
                self.name,
                ms,
                route=decision,
                models={**data.trail.models, self.name: self.detector.version},
            )
            routed = RoutedData(
                context=data.context,
                image=data.image,
                alpha=data.alpha,
                text_mask=mask_ref,
                next_stage=_next(stages, None),
                trail=trail,
            )
            outputs.append(
                Output(
                    outcome="pass",
                    objects=tuple(objects),
                    events=(
                        (Topic.ROUTED, _event(item.event, self.name, Topic.ROUTED, routed)),
                        _metrics(
                            item.event, self.name, data.context.vendor_id, "pass", ms, len(items),
                            {"text_coverage": decision.text_coverage},
                        ),
                    ),
                )
            )
        return outputs


# -- inpaint ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _InpaintInput:
    image: Image
    mask: Mask
    overlays: Mask
    """The text part of ``mask`` outside the caller's objects: where the fill may be replaced by
    the background un-blended from under a semi-transparent overlay."""


class InpaintStage:
    """routed → inpainted (or review): remove text and caller-masked objects.

    Every item is gated (preservation outside the mask, seam, no worse than the input) with its
    vendor's thresholds; while the stage's circuit breaker is open, items go to review untouched
    (or the batch is held, by policy).
    """

    name = "inpaint"
    consumes = (Topic.ROUTED,)

    def __init__(self, settings: Settings, board: BreakerBoard | None = None) -> None:
        self.keys = _keys(settings)
        self.settings = settings
        self.board = board
        # Masks are grown once, in load (edit_region): the text detector's already cover the
        # outline and antialiasing (they are only trimmed of clean pixels on their edge), the
        # caller's object masks are grown by the default.
        self.inpainter = Inpainter(replace(inpaint_config(settings), dilate=0))
        # Text parts whose ink edge was solved are filled again by the same inpainter, with
        # the solved pixels known (processors.unblend).
        self.unblender = Unblender(refill=self.inpainter) if settings.unblend else None
        self.version = self.inpainter.version + (
            f"+{self.unblender.version}" if self.unblender is not None else ""
        )

    def parse(self, topic: Topic, value: bytes) -> CloudEvent[Any] | None:  # noqa: ARG002
        event = _parse(RoutedData, value)
        return event if event.data.next_stage == self.name else None

    def load(self, event: CloudEvent[Any], store: Store) -> _InpaintInput:
        data: RoutedData = event.data
        image = decode_image(store.get(data.image))
        shape = (image.shape[0], image.shape[1])
        text = None if data.text_mask is None else decode_mask(store.get(data.text_mask), shape)
        objects = None
        if data.context.operations.object_mask is not None:
            # The caller's mask is in original-image coordinates; preflight may have resized,
            # so it is resampled (nearest) to the normalized size.
            objects = decode_mask(store.get(data.context.operations.object_mask), shape)
        text_region = edit_region(shape, text, image=image)
        object_region = edit_region(shape, objects=objects)
        return _InpaintInput(image, text_region | object_region, text_region & ~object_region)

    def process(self, items: Sequence[Loaded[_InpaintInput]]) -> list[Output]:
        started = time.perf_counter()
        admission = _admit(
            self.board, self.name,
            [it.event.data.context.vendor_id for it in items],
        )
        chosen = [i for i, ok in enumerate(admission.allowed) if ok]
        images = [items[i].payload.image for i in chosen]
        masks = [items[i].payload.mask for i in chosen]
        fills = self.inpainter(images, masks) if chosen else []
        if self.unblender is not None and chosen:
            overlays = [items[i].payload.overlays for i in chosen]
            fills = self.unblender(images, overlays, fills)
        edited = dict(zip(chosen, fills, strict=True))
        metrics = dict(zip(chosen, measure_edits(images, list(edited.values()), masks, dilate=0),
                           strict=True))
        shares = _share_ms(items, started)
        outputs = []
        for index, (item, ms) in enumerate(zip(items, shares, strict=True)):
            data: RoutedData = item.event.data
            if index not in edited:
                outputs.append(_held_for_review(item, self.name, ms, len(items), data.text_mask))
                continue
            outputs.append(
                self._output(item, edited[index], metrics[index].to_dict(), ms, len(items),
                             trial=admission.trial[index])
            )
        return outputs

    def _output(
        self, item: Loaded[_InpaintInput], result: Image, fig: dict[str, float | None],
        ms: float, size: int, *, trial: bool,
    ) -> Output:
        data: RoutedData = item.event.data
        vendor = data.context.vendor_id
        failed = edit_gate(fig, self.settings.gates_for(vendor))
        candidate = self.keys.ref(item.event.subject, "inpaint.png")
        mask_ref = self.keys.ref(item.event.subject, "inpaint-mask.png")
        objects = (
            (candidate, encode_png(result), _PNG),
            (mask_ref, encode_mask(item.payload.mask), _PNG),
        )
        trail = _trail(
            data.trail,
            self.name,
            ms,
            metrics={**data.trail.metrics, self.name: fig},
            models={**data.trail.models, self.name: self.version},
            applied=[*data.trail.applied, *([] if failed else [self.name])],
        )
        if failed:
            review = ReviewData(
                context=data.context, stage=self.name, reasons=[Reason.of(c) for c in failed],
                original=data.context.original, candidate=candidate, mask=mask_ref,
                figures=fig, trail=trail,
            )
            events = (
                (Topic.REVIEW, _event(item.event, self.name, Topic.REVIEW, review)),
                _metrics(item.event, self.name, vendor, "fail", ms, size, fig, trial=trial),
            )
            return Output(outcome="fail", objects=objects, events=events)
        out = InpaintedData(
            context=data.context, image=candidate, source=data.image, mask=mask_ref,
            alpha=data.alpha,
            next_stage=_next(trail.route.stages if trail.route else [], self.name),
            trail=trail,
        )
        events = (
            (Topic.INPAINTED, _event(item.event, self.name, Topic.INPAINTED, out)),
            _metrics(item.event, self.name, vendor, "pass", ms, size, fig, trial=trial),
        )
        return Output(outcome="pass", objects=objects, events=events)


def edit_gate(figures: dict[str, float | None], gates: GateKnobs) -> list[ReasonCode]:
    """Reason codes of every edit gate the figures fail (empty = pass).

    Preservation outside the mask (PSNR and SSIM near-lossless), the seam at the mask boundary,
    and "no worse than the input": the filled region must not be busier than its surroundings
    by more than ``max_texture_ratio`` (noise, garbage, text left in place).
    """
    failed = []
    psnr_out = figures.get("psnr_outside")
    ssim_out = figures.get("ssim_outside")
    seam = figures.get("seam")
    texture = figures.get("texture_out")
    if (psnr_out is not None and psnr_out < gates.min_psnr_outside) or (
        ssim_out is not None and ssim_out < gates.min_ssim_outside
    ):
        failed.append(ReasonCode.PRESERVATION_FAILED)
    if seam is not None and seam > gates.max_seam:
        failed.append(ReasonCode.SEAM_VISIBLE)
    if texture is not None and texture > gates.max_texture_ratio:
        failed.append(ReasonCode.WORSE_THAN_INPUT)
    return failed


def upscale_gate(figures: dict[str, float | None], gates: GateKnobs) -> list[ReasonCode]:
    """Reason codes of every upscale gate the figures fail (empty = pass): consistency (the
    output shrunk back matches the input) and "no worse than the input" (no added noise)."""
    failed = []
    consistency = figures.get("consistency_psnr")
    detail = figures.get("detail_ratio")
    if consistency is not None and consistency < gates.min_upscale_psnr:
        failed.append(ReasonCode.UPSCALE_INCONSISTENT)
    if detail is not None and detail > gates.max_detail_ratio:
        failed.append(ReasonCode.WORSE_THAN_INPUT)
    return failed


# -- upscale ----------------------------------------------------------------------------------


class UpscaleStage:
    """routed / inpainted → upscaled (or review): ×2/×4, then resize to the requested size.

    Gated and guarded by the circuit breaker like :class:`InpaintStage`.
    """

    name = "upscale"
    consumes = (Topic.ROUTED, Topic.INPAINTED)

    def __init__(self, settings: Settings, board: BreakerBoard | None = None) -> None:
        self.keys = _keys(settings)
        self.settings = settings
        self.board = board
        self.upscaler = Upscaler(upscale_config(settings))

    def parse(self, topic: Topic, value: bytes) -> CloudEvent[Any] | None:
        model = RoutedData if topic is Topic.ROUTED else InpaintedData
        event = _parse(model, value)
        return event if event.data.next_stage == self.name else None

    def load(self, event: CloudEvent[Any], store: Store) -> Image:
        return decode_image(store.get(event.data.image))

    def process(self, items: Sequence[Loaded[Image]]) -> list[Output]:
        started = time.perf_counter()
        admission = _admit(
            self.board, self.name,
            [it.event.data.context.vendor_id for it in items],
        )
        chosen = [i for i, ok in enumerate(admission.allowed) if ok]
        targets = {i: int(items[i].event.data.context.operations.upscale_to) for i in chosen}
        results: dict[int, Image] = {}
        by_scale: dict[int, list[int]] = {}
        for index in chosen:
            height, width = items[index].payload.shape[:2]
            by_scale.setdefault(plan_scale(height, width, targets[index]), []).append(index)
        for scale, indices in sorted(by_scale.items()):
            upscaled = self.upscaler([items[i].payload for i in indices], scale=scale)
            for index, image in zip(indices, upscaled, strict=True):
                results[index] = resize_long_side(image, targets[index])
        metrics = dict(zip(chosen, measure_upscales([items[i].payload for i in chosen],
                                                    [results[i] for i in chosen]), strict=True))
        shares = _share_ms(items, started)
        outputs = []
        for index, (item, ms) in enumerate(zip(items, shares, strict=True)):
            if index not in results:
                mask = getattr(item.event.data, "mask", None)
                outputs.append(_held_for_review(item, self.name, ms, len(items), mask))
                continue
            outputs.append(self._output(item, results[index], metrics[index].to_dict(), ms,
                                        len(items), trial=admission.trial[index]))
        return outputs

    def _output(
        self, item: Loaded[Image], result: Image, fig: dict[str, float | None], ms: float,
        size: int, *, trial: bool,
    ) -> Output:
        data = item.event.data
        vendor = data.context.vendor_id
        failed = upscale_gate(fig, self.settings.gates_for(vendor))
        candidate = self.keys.ref(item.event.subject, "upscale.png")
        objects = ((candidate, encode_png(result), _PNG),)
        trail = _trail(
            data.trail,
            self.name,
            ms,
            metrics={**data.trail.metrics, self.name: fig},
            models={**data.trail.models, self.name: self.upscaler.version},
            applied=[*data.trail.applied, *([] if failed else [self.name])],
        )
        if failed:
            review = ReviewData(
                context=data.context, stage=self.name, reasons=[Reason.of(c) for c in failed],
                original=data.context.original, candidate=candidate,
                mask=getattr(data, "mask", None), figures=fig, trail=trail,
            )
            events = (
                (Topic.REVIEW, _event(item.event, self.name, Topic.REVIEW, review)),
                _metrics(item.event, self.name, vendor, "fail", ms, size, fig, trial=trial),
            )
            return Output(outcome="fail", objects=objects, events=events)
        out = UpscaledData(
            context=data.context, image=candidate, source=data.image, alpha=data.alpha,
            next_stage="finalize", trail=trail,
        )
        events = (
            (Topic.UPSCALED, _event(item.event, self.name, Topic.UPSCALED, out)),
            _metrics(item.event, self.name, vendor, "pass", ms, size, fig, trial=trial),
        )
        return Output(outcome="pass", objects=objects, events=events)


# -- finalize ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FinalInput:
    image: bytes
    alpha: bytes | None
    mask: ImageRef | None


class FinalizeStage:
    """routed / inpainted / upscaled → results: the final image (alpha re-attached if kept)."""

    name = "finalize"
    consumes = (Topic.ROUTED, Topic.INPAINTED, Topic.UPSCALED)
    _models: dict[Topic, type[BaseModel]] = {  # noqa: RUF012 - read-only lookup
        Topic.ROUTED: RoutedData,
        Topic.INPAINTED: InpaintedData,
        Topic.UPSCALED: UpscaledData,
    }

    def __init__(self, settings: Settings) -> None:
        self.keys = _keys(settings)

    def parse(self, topic: Topic, value: bytes) -> CloudEvent[Any] | None:
        event = _parse(self._models[topic], value)
        return event if event.data.next_stage == self.name else None

    def load(self, event: CloudEvent[Any], store: Store) -> _FinalInput:
        data = event.data
        alpha = store.get(data.alpha) if data.alpha is not None else None
        mask = getattr(data, "mask", None) or getattr(data, "text_mask", None)
        return _FinalInput(store.get(data.image), alpha, mask)

    def process(self, items: Sequence[Loaded[_FinalInput]]) -> list[Output]:
        started = time.perf_counter()
        finals = [self._final_bytes(it.payload) for it in items]
        shares = _share_ms(items, started)
        outputs = []
        for item, final, ms in zip(items, finals, shares, strict=True):
            data = item.event.data
            ref = self.keys.ref(item.event.subject, "final.png")
            trail = _trail(data.trail, self.name, ms)
            result = ResultData(context=data.context, image=ref, mask=item.payload.mask,
                                trail=trail)
            events = (
                (Topic.RESULTS, _event(item.event, self.name, Topic.RESULTS, result)),
                _metrics(item.event, self.name, data.context.vendor_id, "pass", ms, len(items)),
            )
            outputs.append(Output(outcome="pass", objects=((ref, final, _PNG),), events=events))
        return outputs

    @staticmethod
    def _final_bytes(payload: _FinalInput) -> bytes:
        if payload.alpha is None:
            return payload.image
        image = decode_image(payload.image)
        alpha = decode_mask_raw(payload.alpha, (image.shape[0], image.shape[1]))
        return encode_png(image, alpha)


def decode_mask_raw(data: bytes, shape: tuple[int, int]) -> Mask:
    """An alpha channel resized (bilinear) to ``shape``, values kept."""
    from PIL import Image as PILImage  # noqa: PLC0415 - only finalize with kept alpha needs it

    with PILImage.open(io.BytesIO(data)) as pil:
        gray = pil.convert("L")
        if gray.size != (shape[1], shape[0]):
            gray = gray.resize((shape[1], shape[0]), PILImage.Resampling.BILINEAR)
        return np.ascontiguousarray(np.asarray(gray, dtype=np.uint8))


def text_config(settings: Settings) -> TextDetectorConfig:
    """The text detector the settings ask for (segmenter on or off, device)."""
    cuda = settings.torch_device().startswith("cuda")
    return TextDetectorConfig(device="cuda" if cuda else "cpu", segmenter=settings.text_segmenter)


def inpaint_config(settings: Settings) -> InpaintConfig:
    """The inpainter the settings ask for (method, user model, device, thin-hole fill)."""
    model = settings.inpaint_model if settings.inpaint_method == "torchscript" else None
    return InpaintConfig(method=settings.inpaint_method, model=model,
                         device=settings.torch_device(), thin=settings.inpaint_thin)


def upscale_config(settings: Settings) -> UpscaleConfig:
    """The upscaler the settings ask for (method, user model, device)."""
    return UpscaleConfig(method=settings.upscale_method, model=settings.upscale_model,
                         device=settings.torch_device())


def build_stages(
    settings: Settings, names: Sequence[str] = STAGE_NAMES, board: BreakerBoard | None = None
) -> list[Stage[Any]]:
    """The stages called ``names``, in pipeline order; unknown names raise ValueError.
    ``board`` is the circuit breaker the editing stages consult (None: no breaker). Sets torch's
    CPU thread count (``torch_threads``) for the process first: stages are built once, at
    start-up, in every mode."""
    torch.set_num_threads(settings.torch_threads)
    factories: dict[str, type[Any]] = {
        "preflight": PreflightStage,
        "route": RouteStage,
        "inpaint": InpaintStage,
        "upscale": UpscaleStage,
        "finalize": FinalizeStage,
    }
    unknown = [n for n in names if n not in factories]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; choose from {', '.join(STAGE_NAMES)}")
    guarded = {"inpaint", "upscale"}
    return [
        factories[n](settings, board) if n in guarded else factories[n](settings)
        for n in STAGE_NAMES
        if n in names
    ]
