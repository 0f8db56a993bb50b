"""An Adobe RGB (1998) ICC profile, built by hand (Pillow and littlecms cannot create one)."""

from __future__ import annotations

import struct
from functools import cache
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["adobe_rgb_icc"]

# --------------------------------------------------------------------------------------------
# Adobe RGB (1998) ICC profile, built by hand (Pillow/littlecms cannot create one)
# --------------------------------------------------------------------------------------------

_D50: Final = (0.9642, 1.0, 0.8249)
_BRADFORD: Final = np.array(
    [[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]],
)


def _xy_to_xyz(x: float, y: float) -> npt.NDArray[np.float64]:
    return np.array([x / y, 1.0, (1.0 - x - y) / y])


def _adobe_rgb_colorants() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """D65 white and the Adobe RGB primaries as XYZ columns, Bradford-adapted to D50."""
    white = _xy_to_xyz(0.3127, 0.3290)
    primaries = np.stack(
        [_xy_to_xyz(0.64, 0.33), _xy_to_xyz(0.21, 0.71), _xy_to_xyz(0.15, 0.06)], axis=1
    )
    rgb_to_xyz = primaries * np.linalg.solve(primaries, white)
    cone_gain = (_BRADFORD @ np.array(_D50)) / (_BRADFORD @ white)
    adapt = np.linalg.inv(_BRADFORD) @ np.diag(cone_gain) @ _BRADFORD
    return white, adapt @ rgb_to_xyz


def _s15f16(values: npt.ArrayLike) -> bytes:
    return b"".join(struct.pack(">i", round(float(v) * 65536)) for v in np.ravel(values))


def _xyz_tag(xyz: npt.ArrayLike) -> bytes:
    return b"XYZ \0\0\0\0" + _s15f16(xyz)


def _desc_tag(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\0"
    return (
        b"desc\0\0\0\0"
        + struct.pack(">I", len(ascii_text))
        + ascii_text
        + struct.pack(">II", 0, 0)  # Unicode language code and count: none
        + struct.pack(">HB", 0, 0)  # ScriptCode code and count: none
        + b"\0" * 67
    )


def _text_tag(text: str) -> bytes:
    return b"text\0\0\0\0" + text.encode("ascii") + b"\0"


@cache
def adobe_rgb_icc() -> bytes:
    """A minimal, valid ICC v2.1 display profile for Adobe RGB (1998).

    Matrix/TRC form: ``desc``, ``cprt``, ``wtpt`` (D65), ``rXYZ``/``gXYZ``/``bXYZ`` (the Adobe RGB
    primaries Bradford-adapted to the D50 PCS) and ``rTRC``/``gTRC``/``bTRC`` (``curv``, gamma
    563/256). Embed it in a JPEG with ``icc_profile=adobe_rgb_icc()``.
    """
    white, colorants = _adobe_rgb_colorants()
    trc = b"curv\0\0\0\0" + struct.pack(">IH", 1, 563)
    tags: list[tuple[bytes, bytes]] = [
        (b"desc", _desc_tag("Adobe RGB (1998) compatible - pixelgate sample")),
        (b"cprt", _text_tag("No copyright, use freely")),
        (b"wtpt", _xyz_tag(white)),
        (b"rXYZ", _xyz_tag(colorants[:, 0])),
        (b"gXYZ", _xyz_tag(colorants[:, 1])),
        (b"bXYZ", _xyz_tag(colorants[:, 2])),
        (b"rTRC", trc),
        (b"gTRC", trc),
        (b"bTRC", trc),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table = [struct.pack(">I", len(tags))]
    body: list[bytes] = []
    for signature, payload in tags:
        table.append(signature + struct.pack(">II", offset, len(payload)))
        padded = payload + b"\0" * (-len(payload) % 4)
        body.append(padded)
        offset += len(padded)
    header = (
        struct.pack(">I", offset)  # profile size
        + b"\0\0\0\0"  # preferred CMM: none
        + struct.pack(">I", 0x02100000)  # version 2.1
        + b"mntr"
        + b"RGB "
        + b"XYZ "
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)  # fixed creation date: reproducible bytes
        + b"acsp"
        + b"\0" * 4  # primary platform
        + struct.pack(">I", 0)  # flags
        + b"\0" * 8  # device manufacturer and model
        + b"\0" * 8  # device attributes
        + struct.pack(">I", 0)  # rendering intent: perceptual
        + _s15f16(_D50)  # PCS illuminant
        + b"\0" * 4  # creator
    )
    header += b"\0" * (128 - len(header))
    return header + b"".join(table) + b"".join(body)
