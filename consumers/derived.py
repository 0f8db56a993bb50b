"""Events derived from an item's event: the same subject (image id), a deterministic id.

Every stage (:mod:`consumers.stages`) and the out-of-memory ladder (:mod:`consumers.oom`) build
their next events here, so a replayed record produces the same event ids: the id is a UUIDv5 of
the image id, the stage and the topic.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from schemas.events import CloudEvent, Topic, event_type

__all__ = ["derived_event"]

_NAMESPACE = uuid.UUID("6f1d3c2e-5a4b-4f0e-9c8d-7b6a5f4e3d2c")


def derived_event(
    source: CloudEvent[Any], stage: str, topic: Topic, data: BaseModel
) -> CloudEvent[Any]:
    """A derived event: same subject (image id), deterministic id, typed data."""
    return CloudEvent[Any](
        id=str(uuid.uuid5(_NAMESPACE, f"{source.subject}/{stage}/{topic.value}")),
        source=f"pixelgate/{stage}",
        type=event_type(topic),
        subject=source.subject,
        time=datetime.now(UTC),
        data=data,
    )
