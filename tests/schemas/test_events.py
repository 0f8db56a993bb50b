"""The event contract: the documented upload event, strictness, and generated schema files."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from schemas.events import TOPIC_DATA, ImageRef, Topic, UploadedEvent, event_type
from schemas.generate import JSON_DIR, render_all
from schemas.reasons import REASON_TEXT, ReasonCode

DOCUMENTED = {
    "specversion": "1.0",
    "id": "0b7c9c3e-1111-2222-3333-444455556666",
    "source": "marketplace/uploads",
    "type": "pixelgate.uploaded.v1",
    "subject": "0b7c9c3e-1111-2222-3333-444455556666",
    "time": "2026-03-15T10:00:00Z",
    "datacontenttype": "application/json",
    "data": {
        "image": {"bucket": "uploads", "key": "vendor42/sku123/front.jpg"},
        "vendor_id": "vendor42",
        "sku": "sku123",
        "operations": {"remove_text": "auto", "object_mask": None, "upscale_to": None},
    },
}


def _with(path: str, value: object) -> dict:
    event = json.loads(json.dumps(DOCUMENTED))
    *parents, last = path.split(".")
    node = event
    for part in parents:
        node = node[part]
    node[last] = value
    return event


def test_documented_upload_event_validates_and_round_trips():
    event = UploadedEvent.model_validate(DOCUMENTED)
    assert event.data.image.key == "vendor42/sku123/front.jpg"
    again = UploadedEvent.model_validate_json(event.model_dump_json())
    assert again == event


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("specversion", "0.3"),
        ("type", "pixelgate.preflight.v1"),
        ("subject", "another-id"),
        ("data.operations.remove_text", "sometimes"),
        ("data.operations.upscale_to", 10),
        ("data.image.key", "/etc/passwd"),
        ("data.image.key", "a/../b.jpg"),
        ("data.image.key", "a//b.jpg"),
        ("data.image.bucket", "Not_A_Bucket"),
        ("data.vendor_id", ""),
        ("data.surprise", 1),
        ("unknownattr", "x"),
    ],
    ids=lambda v: str(v)[:20],
)
def test_upload_event_is_strict(path, value):
    with pytest.raises(ValidationError):
        UploadedEvent.model_validate(_with(path, value))


def test_image_ref_rejects_control_characters():
    with pytest.raises(ValidationError, match="control"):
        ImageRef(bucket="uploads", key="a\nb.jpg")


def test_every_reason_code_has_a_sentence():
    assert set(REASON_TEXT) == set(ReasonCode)
    assert all(code.text.endswith(".") and len(code.text) > 20 for code in ReasonCode)


def test_every_topic_has_a_type_and_all_but_dlq_a_data_model():
    assert set(TOPIC_DATA) == set(Topic) - {Topic.DLQ}
    assert event_type(Topic.RESULTS) == "pixelgate.results.v1"


def test_generated_json_schema_files_are_current():
    rendered = render_all()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in JSON_DIR.glob("*.json")}
    stale = sorted(n for n in rendered if on_disk.get(n) != rendered[n])
    extra = sorted(set(on_disk) - set(rendered))
    hint = f"schemas/json is stale ({stale}, extra {extra}): run `make schemas` and commit"
    assert not stale, hint
    assert not extra, hint


def test_upload_schema_forbids_unknown_fields():
    schema = json.loads((JSON_DIR / "uploaded.json").read_text())
    assert schema["additionalProperties"] is False
    assert schema["$defs"]["UploadedData"]["additionalProperties"] is False
