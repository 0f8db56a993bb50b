"""routed / inpainted / upscaled → results: the final image (alpha re-attached if kept)."""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel

from consumers.codec import decode_image, encode_png
from consumers.derived import derived_event
from consumers.keys import FINAL, ObjectKeys
from consumers.runner import Loaded, Output
from consumers.settings import Settings
from consumers.stages.common import (
    PNG,
    metrics_event,
    parse_event,
    share_ms,
    timed_trail,
)
from consumers.store import Store
from processors.tensors import Mask
from schemas.events import (
    CloudEvent,
    ImageRef,
    InpaintedData,
    ResultData,
    RoutedData,
    Topic,
    UpscaledData,
)

__all__ = ["FinalizeStage", "decode_mask_raw"]


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
        self.keys = ObjectKeys.from_settings(settings)

    def parse(self, topic: Topic, value: bytes) -> CloudEvent[Any] | None:
        event = parse_event(self._models[topic], value)
        return event if event.data.next_stage == self.name else None

    def load(self, event: CloudEvent[Any], store: Store) -> _FinalInput:
        data = event.data
        alpha = store.get(data.alpha) if data.alpha is not None else None
        mask = getattr(data, "mask", None) or getattr(data, "text_mask", None)
        return _FinalInput(store.get(data.image), alpha, mask)

    def process(self, items: Sequence[Loaded[_FinalInput]]) -> list[Output]:
        started = time.perf_counter()
        finals = [self._final_bytes(it.payload) for it in items]
        shares = share_ms(items, started)
        outputs = []
        for item, final, ms in zip(items, finals, shares, strict=True):
            data = item.event.data
            ref = self.keys.ref(item.event.subject, FINAL)
            trail = timed_trail(data.trail, self.name, ms)
            result = ResultData(context=data.context, image=ref, mask=item.payload.mask,
                                trail=trail)
            events = (
                (Topic.RESULTS, derived_event(item.event, self.name, Topic.RESULTS, result)),
                metrics_event(item.event, self.name, data.context.vendor_id, "pass", ms,
                              len(items)),
            )
            outputs.append(Output(outcome="pass", objects=((ref, final, PNG),), events=events))
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
