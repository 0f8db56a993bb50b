"""Per-item gates: thresholds from the policy, per-vendor overrides, and the figures that feed
them (the "no worse than the input" checks catch noise that preservation cannot see)."""

from __future__ import annotations

import numpy as np
import pytest

from consumers.errors import ConfigError
from consumers.gates import edit_gate, upscale_gate
from consumers.settings import GateKnobs, Settings, load_settings
from processors.quality import measure_edits, measure_upscales
from schemas.reasons import ReasonCode

GOOD_EDIT = {"psnr_outside": 99.0, "ssim_outside": 1.0, "seam": 0.05, "texture_out": 0.8}


def test_a_clean_edit_passes_every_gate():
    assert edit_gate(GOOD_EDIT, GateKnobs()) == []


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("psnr_outside", 30.0, ReasonCode.PRESERVATION_FAILED),
        ("ssim_outside", 0.9, ReasonCode.PRESERVATION_FAILED),
        ("seam", 1.5, ReasonCode.SEAM_VISIBLE),
        ("texture_out", 6.0, ReasonCode.WORSE_THAN_INPUT),
    ],
)
def test_each_edit_gate_fails_on_its_own_figure(field, value, code):
    assert edit_gate({**GOOD_EDIT, field: value}, GateKnobs()) == [code]


def test_gate_thresholds_are_inclusive_at_the_limit():
    gates = GateKnobs()
    at_limit = {**GOOD_EDIT, "seam": gates.max_seam, "texture_out": gates.max_texture_ratio,
                "psnr_outside": gates.min_psnr_outside}
    assert edit_gate(at_limit, gates) == []


def test_upscale_gates():
    gates = GateKnobs()
    assert upscale_gate({"consistency_psnr": 40.0, "detail_ratio": 1.0}, gates) == []
    assert upscale_gate({"consistency_psnr": 20.0, "detail_ratio": 1.0}, gates) == [
        ReasonCode.UPSCALE_INCONSISTENT
    ]
    assert upscale_gate({"consistency_psnr": 40.0, "detail_ratio": 3.0}, gates) == [
        ReasonCode.WORSE_THAN_INPUT
    ]


def test_vendors_override_only_the_fields_they_give():
    settings = Settings(vendor_gates={"lenient": {"max_seam": 3.0}})
    lenient = settings.gates_for("lenient")
    assert lenient.max_seam == 3.0
    assert lenient.min_psnr_outside == settings.gates.min_psnr_outside
    assert settings.gates_for("anyone-else") == settings.gates
    figures = {**GOOD_EDIT, "seam": 2.0}
    assert edit_gate(figures, settings.gates_for("anyone-else")) == [ReasonCode.SEAM_VISIBLE]
    assert edit_gate(figures, lenient) == []


def test_a_misspelt_vendor_gate_is_a_clear_config_error(tmp_path):
    config = tmp_path / "pixelgate.yaml"
    config.write_text("vendor_gates:\n  acme:\n    max_seem: 2.0\n")
    with pytest.raises(ConfigError, match=r"vendor_gates\.acme: bad gate field\(s\) max_seem"):
        load_settings(config)


def test_noise_in_the_filled_region_is_worse_than_the_input():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:96, 0:96].astype(np.float64)
    image = np.repeat((90 + x + 0.5 * y)[:, :, None], 3, axis=2).astype(np.uint8)
    mask = np.zeros((96, 96), np.uint8)
    mask[40:56, 20:76] = 255
    smooth = image.copy()  # a perfect fill of a smooth background
    noisy = image.copy()
    noisy[mask > 0] = rng.integers(0, 256, (int((mask > 0).sum()), 3), dtype=np.uint8)
    good, bad = measure_edits([image, image], [smooth, noisy], [mask, mask], dilate=0)
    assert edit_gate(good.to_dict(), GateKnobs()) == []
    assert ReasonCode.WORSE_THAN_INPUT in edit_gate(bad.to_dict(), GateKnobs())
    assert bad.texture_out > 10 * max(good.texture_out, 0.1)


def test_an_upscale_that_adds_noise_is_worse_than_the_input():
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:64, 0:64].astype(np.float64)
    small = np.repeat((60 + 2 * x + y)[:, :, None], 3, axis=2).astype(np.uint8)
    clean = np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)
    noisy = np.clip(clean + rng.normal(0, 40, clean.shape), 0, 255).astype(np.uint8)
    good, bad = measure_upscales([small, small], [clean, noisy])
    assert upscale_gate(good.to_dict(), GateKnobs()) == []
    assert ReasonCode.WORSE_THAN_INPUT in upscale_gate(bad.to_dict(), GateKnobs())
