"""uploaded → preflight (normalized PNG) or rejected (reason codes)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from consumers.codec import encode_mask, encode_png
from consumers.derived import derived_event
from consumers.errors import PoisonRecordError
from consumers.keys import ALPHA, PREFLIGHT_IMAGE, ObjectKeys
from consumers.runner import Loaded, Output
from consumers.settings import Settings
from consumers.stages.common import PNG, metrics_event, share_ms
from consumers.store import Store
from processors.preflight import Preflight, PreflightPolicy, PreflightResult
from schemas.events import (
    CloudEvent,
    ItemContext,
    PreflightData,
    Reason,
    RejectedData,
    Topic,
    Trail,
    UploadedEvent,
)

__all__ = ["PreflightStage"]


class PreflightStage:
    """uploaded → preflight (normalized PNG) or rejected (reason codes)."""

    name = "preflight"
    consumes = (Topic.UPLOADED,)

    def __init__(self, settings: Settings) -> None:
        self.keys = ObjectKeys.from_settings(settings)
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
        shares = share_ms(items, started)
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
                    (Topic.REJECTED, derived_event(event, self.name, Topic.REJECTED, rejected)),
                    metrics_event(event, self.name, data.vendor_id, "rejected", ms, size),
                ),
            )
        if result.image is None:
            raise ValueError("preflight accepted an image but returned no pixels")
        image_ref = self.keys.ref(event.subject, PREFLIGHT_IMAGE)
        objects = [(image_ref, encode_png(result.image), PNG)]
        alpha_ref = None
        if result.alpha is not None:
            alpha_ref = self.keys.ref(event.subject, ALPHA)
            objects.append((alpha_ref, encode_mask(result.alpha), PNG))
        out = PreflightData(context=context, image=image_ref, alpha=alpha_ref, trail=trail)
        return Output(
            outcome="pass",
            objects=tuple(objects),
            events=(
                (Topic.PREFLIGHT, derived_event(event, self.name, Topic.PREFLIGHT, out)),
                metrics_event(event, self.name, data.vendor_id, "pass", ms, size),
            ),
        )
