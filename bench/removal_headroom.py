"""How much removal quality the text masks leave on the table: mask oracles and targets.

    python -m bench.removal_headroom --out bench/results [--seed 0] [--limit N] [--growths]
        [--refiner PATH]

``bench/quality.py`` scores the product's text removal with the detector's masks. This script
asks what *other* masks would score, with the same corpus and definitions (PSNR inside
``dilate_mask(GT, 3)``, per-image values capped at ``PSNR_MEAN_CAP`` in the means; SSIM over the
image), so that what the removal rows need can be read off, and rerun. The oracle rows use the
clean original and the exact ground truth, which no product has.

**Shipped removal** (every row below, unless it names another method): the detector's mask
trimmed as the product trims it (``processors.inpaint.edit_region``), filled by our inpainter
(``dilate=0``), then un-blended and refilled (``processors.unblend``), exactly as
``bench/quality.py``'s "ours (detected mask)" (its first row reproduces that figure).

- **Mask oracles**, each through the shipped removal: the trimmed mask with its pixels more
  than 8 px from the truth dropped (the benchmark's false-positive area), cut to the truth
  grown by 2, 1 and 0 px, with the truth it misses added, and the exact truth itself.
- **Result oracles**, from the shipped row's output: every pixel outside the truth (or beyond
  1 px of it) set back to the clean original, i.e. all the over-fill's cost given back; and
  the missed truth also taken from the exact-truth row's output.
- **The targets**: OpenCV NS (the PSNR row) and Telea (the SSIM row) with the exact truth, and
  our inpainter alone on it.
- With ``--growths``: the detector rerun with less ink growth
  (``dilation`` 0-3 px, ``shadow_reach`` 0) and filled *without* trim or un-blending (the
  fill alone), with a per-image oracle over them. Slow: the detector runs four more times.
- With ``--refiner PATH``: the mask trimmed by the learned per-pixel model of
  ``bench/train_text_refine.py`` (an experiment the product does not use), fill alone, as it
  is and with the mask's core (pixels more than 5 px inside it) always kept.

Writes ``removal_headroom.json`` (per image and means) and ``removal_headroom.md``. Slow: the
removal runs seven times over the corpus, about 40 CPU-minutes a seed without ``--growths``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress, TaskID

from bench.common import exit_on_sigterm
from bench.corpus import TextCase, build_corpus
from bench.quality import FP_DILATE, PSNR_MEAN_CAP, REMOVAL_DILATE, detection_scores
from processors.inpaint import InpaintConfig, Inpainter, dilate_mask, edit_region
from processors.quality import PSNR_CAP, psnr, ssim
from processors.removal import TextRemoval
from processors.text import TextDetector, TextDetectorConfig

Image = np.ndarray
Fill = Callable[[Sequence[Image], Sequence[Image]], list[Image]]

SHIPPED = "shipped: detected mask, trimmed (bench/quality.py's ours)"
EXACT = "oracle: the exact truth"
NS = "target: NS, exact truth (PSNR row)"
TELEA = "target: Telea, exact truth (SSIM row)"
CUTS = (2, 1, 0)
GROWTHS: dict[str, dict[str, Any]] = {
    "fill alone: dilation 3, shadow reach 0.15 (shipped detector), untrimmed": {},
    "fill alone: dilation 3, shadow reach 0": {"shadow_reach": 0.0},
    "fill alone: dilation 2, shadow reach 0": {"dilation": 2, "shadow_reach": 0.0},
    "fill alone: dilation 1, shadow reach 0": {"dilation": 1, "shadow_reach": 0.0},
    "fill alone: dilation 0, shadow reach 0": {"dilation": 0, "shadow_reach": 0.0},
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    exit_on_sigterm()
    cases = list(build_corpus(args.seed).text_cases)[: args.limit or None]
    fill = Inpainter(InpaintConfig(dilate=0))
    removal = TextRemoval(fill)
    with Progress() as progress:
        # Passes over the corpus: the detector and ten removals, then the options' own.
        passes = 11 + (2 * len(GROWTHS) - 1 if args.growths else 0)
        passes += 2 if args.refiner is not None else 0
        task = progress.add_task("removal headroom", total=len(cases) * passes)
        runs = _Runs(cases, progress, task)
        raw = runs.detect(TextDetectorConfig(threads=args.threads))
        trimmed = [
            edit_region(case.mask.shape, mask, image=case.image)
            for case, mask in zip(cases, raw, strict=True)
        ]
        _mask_oracles(runs, removal, trimmed)
        _targets(runs, fill)
        _result_oracles(runs, trimmed)
        if args.growths:
            _growths(runs, fill, raw, args.threads)
        if args.refiner is not None:
            _refined(runs, fill, raw, args.refiner)
    _write(args.out, args.seed, runs.rows)
    return 0


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0,
                        help="only the first N text cases (a quick check of the script)")
    parser.add_argument("--growths", action="store_true",
                        help="also the detector with less ink growth, filled alone (slow)")
    parser.add_argument("--refiner", type=Path, default=None,
                        help="weights from bench/train_text_refine.py: add its trimmed masks")
    return parser.parse_args(argv)


class _Runs:
    """The rows measured so far, and the passes over the corpus that make them."""

    def __init__(self, cases: list[TextCase], progress: Progress, task: TaskID) -> None:
        self.cases = cases
        self.truth = [case.mask > 0 for case in cases]
        self.exact = [case.mask for case in cases]
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.outputs: dict[str, list[Image]] = {}
        self._progress = progress
        self._task = task

    def detect(self, config: TextDetectorConfig) -> list[Image]:
        """A detector's masks on every case (one pass)."""
        detector = TextDetector(config)
        masks = []
        for case in self.cases:
            masks.append(detector([case.image])[0].mask)
            self._progress.advance(self._task)
        return masks

    def run(self, label: str, method: Fill, masks: list[Image]) -> None:
        """Row ``label``: ``method`` fills each case's mask (one pass)."""
        results = []
        for case, mask in zip(self.cases, masks, strict=True):
            results.append(method([case.image], [mask])[0])
            self._progress.advance(self._task)
        self.rows[label] = _scores(self.cases, results, masks)
        if label in (SHIPPED, EXACT):  # the result oracles start from these two
            self.outputs[label] = results


def _mask_oracles(runs: _Runs, removal: Fill, trimmed: list[Image]) -> None:
    """The shipped removal with the shipped masks, then with masks that know the truth."""
    cases = runs.cases
    runs.run(SHIPPED, removal, trimmed)
    runs.run("oracle: shipped mask, pixels > 8 px from the truth dropped", removal,
             _cut(trimmed, cases, FP_DILATE))
    for k in CUTS:
        runs.run(f"oracle: shipped mask ∩ truth grown {k} px", removal, _cut(trimmed, cases, k))
    added = [
        np.where((mask > 0) | t, 255, 0).astype(np.uint8)
        for mask, t in zip(trimmed, runs.truth, strict=True)
    ]
    runs.run("oracle: shipped mask ∪ truth (the missed truth added)", removal, added)
    runs.run(EXACT, removal, runs.exact)


def _targets(runs: _Runs, fill: Fill) -> None:
    """OpenCV NS and Telea, and our fill alone, with the exact truth."""
    runs.run(NS, Inpainter(InpaintConfig(method="ns", dilate=0)), runs.exact)
    runs.run(TELEA, Inpainter(InpaintConfig(method="telea", dilate=0)), runs.exact)
    runs.run("our fill alone, exact truth", fill, runs.exact)


def _result_oracles(runs: _Runs, trimmed: list[Image]) -> None:
    """The shipped output with the cost of its over-fill given back."""
    cases, truth, rows, outputs = runs.cases, runs.truth, runs.rows, runs.outputs
    given_back = [
        np.where(t[..., None], out, case.clean)
        for case, t, out in zip(cases, truth, outputs[SHIPPED], strict=True)
    ]
    rows["oracle: shipped output, every pixel outside the truth set clean"] = _scores(
        cases, given_back, trimmed)
    beyond = [
        np.where((dilate_mask(case.mask, 1) > 0)[..., None], out, case.clean)
        for case, out in zip(cases, outputs[SHIPPED], strict=True)
    ]
    rows["oracle: shipped output, every pixel beyond 1 px of the truth set clean"] = _scores(
        cases, beyond, trimmed)
    completed = [
        np.where((t & (m == 0))[..., None], out, back)
        for t, m, out, back in zip(truth, trimmed, outputs[EXACT], given_back, strict=True)
    ]
    rows["oracle: the same, and the missed truth taken from the exact-truth row"] = _scores(
        cases, completed, runs.exact)


def _growths(runs: _Runs, fill: Fill, raw: list[Image], threads: int) -> None:
    """The detector with less ink growth, filled alone, and the best growth per image."""
    for label, knobs in GROWTHS.items():
        grown = raw  # the shipped detector's masks, found above
        if knobs:
            grown = runs.detect(TextDetectorConfig(threads=threads, **knobs))
        runs.run(label, fill, grown)
    runs.rows["oracle (fill alone): best growth per image, by PSNR"] = [
        max((runs.rows[label][i] for label in GROWTHS), key=lambda row: row["psnr_region"])
        for i in range(len(runs.cases))
    ]


def _refined(runs: _Runs, fill: Fill, raw: list[Image], weights: Path) -> None:
    """The untrimmed masks trimmed by the learned refiner, filled alone."""
    from bench.train_text_refine import load_refiner, refine_masks  # noqa: PLC0415

    net = load_refiner(weights)
    images = [case.image for case in runs.cases]
    for core in (0, 5):
        refined = refine_masks(net, images, raw, core=core)
        runs.run(f"fill alone: untrimmed mask, learned trim (core {core} px kept)", fill, refined)


def _write(out: Path, seed: int, rows: dict[str, list[dict[str, Any]]]) -> None:
    summary = {label: _summary(values) for label, values in rows.items()}
    out.mkdir(parents=True, exist_ok=True)
    report = {"seed": seed, "summary": summary, "per_image": rows}
    (out / "removal_headroom.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "removal_headroom.md").write_text(_markdown(seed, summary))
    print(_markdown(seed, summary))


def _cut(masks: list[Image], cases: list[TextCase], grow: int) -> list[Image]:
    """Each mask cut to its case's truth grown by ``grow`` px."""
    return [
        np.where((mask > 0) & (dilate_mask(case.mask, grow) > 0), 255, 0).astype(np.uint8)
        for mask, case in zip(masks, cases, strict=True)
    ]


def _scores(
    cases: list[TextCase], results: list[Image], masks: list[Image]
) -> list[dict[str, Any]]:
    """``bench/quality.py``'s removal figures per image, with the mask's detection figures."""
    rows = []
    for case, result, mask in zip(cases, results, masks, strict=True):
        recall, fp_area = detection_scores(case.mask, mask)
        rows.append({
            "name": case.name, "kind": case.kind,
            "psnr_region": min(
                psnr(case.clean, result, dilate_mask(case.mask, REMOVAL_DILATE)), PSNR_CAP
            ),
            "ssim_image": ssim(case.clean, result),
            "recall": recall, "fp_area": fp_area,
        })
    return rows


def _summary(values: list[dict[str, Any]]) -> dict[str, float]:
    return {
        "psnr_region": float(np.mean([min(v["psnr_region"], PSNR_MEAN_CAP) for v in values])),
        "ssim_image": float(np.mean([v["ssim_image"] for v in values])),
        "recall": float(np.mean([v["recall"] for v in values])),
        "fp_area": float(np.mean([v["fp_area"] for v in values])),
    }


def _markdown(seed: int, summary: dict[str, dict[str, float]]) -> str:
    ns, telea = summary[NS]["psnr_region"], summary[TELEA]["ssim_image"]
    lines = [
        f"# Removal headroom (corpus seed {seed})",
        "",
        f"PSNR inside dilate(GT, {REMOVAL_DILATE}) (per-image values capped at "
        f"{PSNR_MEAN_CAP:g} dB in the means), SSIM over the image; the product's removal (trim, "
        "fill, un-blending) unless the row says otherwise. Oracle rows use the clean original "
        "and the exact truth. The last two columns hold a row against the removal targets: "
        f"PSNR ≥ NS with the exact truth ({ns:.2f} dB), SSIM ≥ Telea with it ({telea:.5f}).",
        "",
        "| masks | PSNR (dB) | SSIM | GT recall | false-positive area | PSNR row | SSIM row |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, s in summary.items():
        psnr_row = "pass" if s["psnr_region"] >= ns else f"{s['psnr_region'] - ns:+.2f}"
        ssim_row = "pass" if s["ssim_image"] >= telea else f"{s['ssim_image'] - telea:+.5f}"
        lines.append(
            f"| {label} | {s['psnr_region']:.2f} | {s['ssim_image']:.5f} | {s['recall']:.4f} "
            f"| {100 * s['fp_area']:.3f} % | {psnr_row} | {ssim_row} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
