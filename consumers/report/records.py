"""What a report is made of: one :class:`ReportRow` per input file, and ``report.jsonl``.

``report.jsonl`` is for machines: one compact JSON object per input file, sorted by input path,
with the contract's keys in the contract's order (see ``CONTRACT_KEYS``)::

    {"input": ..., "status": "done"|"review"|"rejected"|"failed", "reasons": [{"code", "text"}],
     "route": {...}, "output": ..., "metrics": {...}, "timings_ms": {...}}

The record accessors here (``input_key``, ``status_of``, ``reason_pairs``, ``numeric_timings``)
read a record as the HTML page shows it, tolerating missing or malformed fields.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, Final

import numpy as np
import orjson

from schemas.reasons import ReasonCode

__all__ = [
    "CONTRACT_KEYS",
    "STATUSES",
    "BreakerTransition",
    "ReportRow",
    "atomic_write",
    "input_key",
    "is_number",
    "numeric_timings",
    "reason_pairs",
    "status_of",
    "write_jsonl",
]

CONTRACT_KEYS: Final = ("input", "status", "reasons", "route", "output", "metrics", "timings_ms")
"""The keys of one ``report.jsonl`` line, in the order they are written."""

STATUSES: Final = ("done", "review", "rejected", "failed")
"""Every terminal status a report line can have, in the order the summary lists them."""

_DEFAULTS: Final[Mapping[str, Any]] = {
    "reasons": (),
    "route": {},
    "output": None,
    "metrics": {},
    "timings_ms": {},
}


@dataclass(frozen=True, kw_only=True)
class ReportRow:
    """One input file's outcome, and the images that illustrate it in the HTML report."""

    record: Mapping[str, Any]
    """Exactly one ``report.jsonl`` line: ``input``, ``status``, ``reasons``, ``route``,
    ``output``, ``metrics``, ``timings_ms``."""
    before: Path | None
    """The normalized (preflight) image on disk; ``None`` for rejected or failed files. Never
    the raw upload: that may be hostile and is not decoded here."""
    after: Path | None
    """The final image on disk (status ``done``); ``None`` otherwise."""
    mask: Path | None
    """The removal mask on disk (255 = removed), if any."""
    candidate: Path | None = None
    """For ``review`` items: the candidate output the quality gate refused."""


@dataclass(frozen=True, kw_only=True)
class BreakerTransition:
    """One circuit-breaker state change, listed in the report's summary."""

    stage: str
    """The stage whose breaker changed state (``inpaint``, ``upscale``, ...)."""
    from_state: str
    """The state it left: ``CLOSED``, ``OPEN``, ``HALF_OPEN``, ``FORCED_OPEN``, ``DISABLED``."""
    to_state: str
    """The state it entered."""
    at: str
    """When, as an ISO 8601 timestamp."""
    failure_rate: float | None
    """The window's failure rate (0..1) that caused it; ``None`` for manual transitions."""
    vendor: str | None = None
    """The vendor scope, for per-vendor breakers; ``None`` = the stage's shared breaker."""
    reason: str = ""
    """Why, in a sentence (the window figures that caused it, or the operator's command)."""


# --------------------------------------------------------------------------------------------
# Reading a record
# --------------------------------------------------------------------------------------------


def input_key(record: Mapping[str, Any]) -> str:
    """The record's ``input`` as a POSIX path string: the sort key of both report files."""
    value = record.get("input")
    return value.as_posix() if isinstance(value, PurePath) else str(value)


def status_of(record: Mapping[str, Any]) -> str:
    """The record's ``status`` as a string (empty when missing)."""
    return str(record.get("status", ""))


def is_number(value: object) -> bool:
    """Whether ``value`` is a Python or NumPy number (booleans are not numbers here)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def reason_pairs(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(code, text)`` for each reason; text falls back to the ReasonCode sentence."""
    raw = record.get("reasons") or ()
    if isinstance(raw, (str, Mapping)):
        raw = [raw]
    pairs: list[tuple[str, str]] = []
    for reason in raw:
        if isinstance(reason, Mapping):
            code, text = str(reason.get("code", "")), str(reason.get("text") or "")
        else:
            code, text = str(reason), ""
        if not text and code in ReasonCode.__members__:
            text = ReasonCode[code].text
        pairs.append((code, text))
    return pairs


def numeric_timings(record: Mapping[str, Any]) -> dict[str, float]:
    """The record's finite numeric ``timings_ms`` entries, by stage."""
    timings = record.get("timings_ms")
    if not isinstance(timings, Mapping):
        return {}
    return {
        str(stage): float(value)
        for stage, value in timings.items()
        if is_number(value) and math.isfinite(float(value))
    }


# --------------------------------------------------------------------------------------------
# report.jsonl
# --------------------------------------------------------------------------------------------


def _json_default(value: object) -> object:
    if isinstance(value, PurePath):
        return value.as_posix()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    msg = f"cannot write {type(value).__name__} to report.jsonl; convert it to a JSON type first"
    raise TypeError(msg)


def _contract_line(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record with the contract keys first, in contract order; missing optional keys filled."""
    missing = [key for key in ("input", "status") if key not in record]
    if missing:
        msg = (
            f"report record is missing {missing}; every line needs at least 'input' and "
            f"'status' (got keys {sorted(record)})"
        )
        raise ValueError(msg)
    line = {key: record.get(key, _DEFAULTS.get(key)) for key in CONTRACT_KEYS}
    line.update((key, value) for key, value in record.items() if key not in line)
    return line


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it, then replace ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def write_jsonl(path: Path, records: Iterable[Mapping[str, Any]]) -> None:
    """Write ``report.jsonl``: one compact JSON object per record, sorted by ``input``.

    Keys follow ``CONTRACT_KEYS`` (extra keys come after, in their own order); a missing
    ``reasons``/``route``/``output``/``metrics``/``timings_ms`` is written as empty/null. NumPy
    scalars and paths are converted. The file is replaced atomically.
    """
    lines = sorted((_contract_line(record) for record in records), key=input_key)
    option = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    data = b"".join(
        orjson.dumps(line, default=_json_default, option=option) + b"\n" for line in lines
    )
    atomic_write(path, data)
