"""Generate ``schemas/json/<topic>.json``: the JSON Schema of each topic's CloudEvent.

Run ``python -m schemas.generate`` after changing a model; ``tests/schemas`` fails while the
files on disk are stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from schemas.events import (
    BREAKER_CONTROL_TYPE,
    TOPIC_DATA,
    BreakerControlData,
    CloudEvent,
    Topic,
    UploadedEvent,
)

__all__ = ["JSON_DIR", "render_all", "schema_for", "write_all"]

JSON_DIR = Path(__file__).parent / "json"


def schema_for(topic: Topic) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a whole event on ``topic``."""
    model: type[BaseModel] = (
        UploadedEvent if topic is Topic.UPLOADED else CloudEvent[TOPIC_DATA[topic]]  # type: ignore[valid-type]
    )
    schema = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://pixelgate.dev/schemas/{topic.value}.v1.json"
    schema["title"] = f"pixelgate.{topic.value}.v1"
    return schema


def control_schema() -> dict[str, Any]:
    """The JSON Schema of a breaker control command (the second event type on ``breaker``)."""
    schema = CloudEvent[BreakerControlData].model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://pixelgate.dev/schemas/breaker.control.v1.json"
    schema["title"] = BREAKER_CONTROL_TYPE
    return schema


def render_all() -> dict[str, str]:
    """File name -> file text, for every topic with a data model (plus breaker control)."""
    files = {
        f"{topic.value}.json": json.dumps(schema_for(topic), indent=2, sort_keys=True) + "\n"
        for topic in TOPIC_DATA
    }
    files["breaker-control.json"] = json.dumps(control_schema(), indent=2, sort_keys=True) + "\n"
    return files


def write_all(directory: Path = JSON_DIR) -> list[Path]:
    """Write every schema file; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    paths = write_all()
    sys.stdout.write(f"wrote {len(paths)} schema files to {JSON_DIR}\n")
