"""Input files and the ``uploaded`` events that start the pipeline, in every mode.

Embedded mode, ``pixelgate submit`` and the single-stage tools read their inputs the same way
(:func:`collect_inputs`), and the two pipeline modes derive image ids, vendor and SKU and the
``uploaded`` record the same way.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from consumers.runner import TopicNames
from consumers.transport import Message
from schemas.events import ImageRef, Operations, Topic, UploadedData, UploadedEvent

__all__ = [
    "InputFile",
    "collect_inputs",
    "image_id_for",
    "safe_name",
    "uploaded_message",
    "vendor_sku",
]

_NAMESPACE = uuid.UUID("0e4f0a52-8a83-4d5e-b4a4-2b1c7d9e6f10")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class InputFile:
    """One input file of a run."""

    name: str
    """Path relative to IN, with '/' separators: the report's ``input``."""
    path: Path
    """The file on disk."""


def collect_inputs(path: Path, *, exclude: Path | None = None) -> list[InputFile]:
    """The files under ``path`` (or ``path`` itself), sorted, hidden files skipped.

    ``exclude`` (typically the output folder, when it lies inside the input) is left out, so a
    rerun never ingests its own outputs. Raises FileNotFoundError / NotADirectoryError with the
    path in the message.
    """
    skip = exclude.resolve() if exclude is not None else None
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
    if path.is_file():
        return [InputFile(path.name, path)]
    if not path.is_dir():
        raise NotADirectoryError(f"input is neither a file nor a folder: {path}")
    files = []
    for root, dirs, names in os.walk(path):
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and (Path(root) / d).resolve() != skip
        )
        for name in sorted(names):
            if name.startswith("."):
                continue
            full = Path(root) / name
            files.append(InputFile(full.relative_to(path).as_posix(), full))
    return files


def image_id_for(name: str, data: bytes) -> str:
    """A deterministic image id: the same file at the same path always gets the same id."""
    digest = hashlib.sha256(data).hexdigest()
    return str(uuid.uuid5(_NAMESPACE, f"{name}\0{digest}"))


def uploaded_message(
    topics: TopicNames, image_id: str, ref: ImageRef, name: str, ops: Operations, source: str
) -> Message:
    """The ``uploaded`` record for a file called ``name`` stored at ``ref`` (vendor and SKU come
    from a ``vendor/sku/file`` path)."""
    vendor, sku = vendor_sku(name)
    event = UploadedEvent(
        id=image_id,
        source=source,
        subject=image_id,
        time=datetime.now(UTC),
        data=UploadedData(image=ref, vendor_id=vendor, sku=sku, operations=ops),
    )
    return Message(
        topics.name(Topic.UPLOADED),
        image_id,
        event.model_dump_json().encode(),
        (("content-type", b"application/cloudevents+json"),),
    )


def safe_name(name: str) -> str:
    """A file name safe inside an object key (letters, digits, ".", "_", "-")."""
    base = _UNSAFE.sub("_", Path(name).name).strip("._") or "file"
    return base[:100]


def vendor_sku(name: str) -> tuple[str, str]:
    """Vendor and SKU from a ``vendor/sku/file`` layout, else placeholders."""
    parts = [_UNSAFE.sub("_", p).strip("._-")[:128] or "x" for p in Path(name).parts[:-1]]
    vendor = parts[0] if parts else "local"
    sku = parts[1] if len(parts) > 1 else Path(name).stem
    sku = _UNSAFE.sub("_", sku).strip("._-")[:128] or "unknown"
    return vendor, sku
