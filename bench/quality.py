"""Benchmark: text detection, text removal and upscaling quality on the seeded corpus, and speed.

    python -m bench.quality --out bench/results [--seed 0] [--only detect --only remove ...]

Builds the corpus (``bench/corpus.py``), runs our processors and the baselines on it and writes
``quality.json`` (every per-image figure, the averages and the target checks) and ``quality.md``
(the same as markdown tables). A method that cannot be built (a missing model file, a method
name the processor does not know) is skipped with its reason in both files, and the other
methods still run.

Definitions (one image = one corpus case; averages are means over images):

- **Detection pixel recall** = |detected ∩ GT| / |GT|. **False-positive area** = |detected \\
  dilate(GT, 8 px ellipse)| / image area. A **clean image gets a text mask** when its mask has
  any pixel. Ours is ``processors.text.TextDetector``; the classical baseline is
  ``bench.text_morph.MorphTextDetector``.
- **Removal PSNR** is measured inside ``dilate_mask(GT, 3)`` against the clean original (all
  three channels); **removal SSIM** over the whole image (luminance, ``processors.quality``).
  Ours = our detector's mask, filled by our inpainter as the product fills it: not grown
  again, only trimmed of the clean pixels on its edge (``processors.inpaint.edit_region``
  with the image, ``trim_text_mask``), then semi-transparent overlays un-blended and the edges
  of single-colour ink un-mixed, those parts filled again (``processors.unblend``); the
  baselines fill the GT mask with OpenCV NS /
  Telea, grown by 3 px ("GT mask") and as it is ("GT mask, not grown": the stricter baseline,
  since the GT already holds every changed pixel); the target rows check both. "ours, GT
  mask" (grown 3 px, 1 px and not) isolates the inpainter and says how tight a mask must be;
  "no removal" is the image with its text.
- **Upscaling PSNR-Y / SSIM-Y**: luma Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 (BT.601,
  as MATLAB's ``rgb2ycbcr``), 4 px shaved from every border, PSNR with peak 255, SSIM as Wang et
  al. (Gaussian window sigma 1.5, data range 255) on the HR image vs the upscaled bicubic LR.
  Ours vs Lanczos (cv2 ``INTER_LANCZOS4``); bicubic (cv2 ``INTER_CUBIC``) for reference.
- **Speed**: median seconds per megapixel (of the input; of the output for upscaling) over
  ``--repeats`` runs on a fixed sample of corpus images. The machine is shared: compare rows of
  one run, not runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from skimage.metrics import structural_similarity

from bench.common import exit_on_sigterm, median_seconds
from bench.corpus import PHOTOS, Corpus, TextCase, build_corpus
from processors.inpaint import dilate_mask, edit_region, trim_text_mask
from processors.quality import PSNR_CAP, psnr, ssim
from processors.removal import TextRemoval

SECTIONS = ("detect", "remove", "upscale", "speed")
FP_DILATE = 8
"""Pixels GT is grown by (ellipse) before counting detected pixels as false positives."""
REMOVAL_DILATE = 3
"""Pixels GT is grown by (ellipse) for the removal PSNR region."""
PSNR_MEAN_CAP = 60.0
"""Per-image PSNRs are capped at this many dB before averaging: a flat render filled or
enlarged exactly scores infinite (99 in the JSON) and would swamp the photos. 60 dB is an RMSE
of 0.26 levels, about the rounding noise of 8-bit pixels, so nothing visible is capped."""
SHAVE = 4
"""Border, px, left out of the upscaling metrics."""
TARGET_RECALL = 0.95
TARGET_FP_AREA = 0.002
TARGET_CLEAN_FLAGGED = 0.05
TARGET_GAIN_DB = {2: 0.5, 4: 0.3}
SLOW_RUN_S = 5.0
"""A timed job whose warm-up run takes longer than this is timed once, not ``--repeats`` times."""
SPEED_SAMPLE = ("astronaut", "motorcycle_right", "render_product")
"""Backgrounds whose caption cases (and LR images) the speed section times."""

_structural_similarity: Callable[..., Any] = structural_similarity
"""scikit-image ships no annotations; a typed handle."""
_SKIPPABLE = (ImportError, ValueError, TypeError, OSError, RuntimeError)
"""What building a method may raise when it is not available yet (recorded, never hidden)."""

Image = np.ndarray
Detect = Callable[[Sequence[Image]], list[Any]]
Inpaint = Callable[[Sequence[Image], Sequence[Image]], list[Image]]
Upscale = Callable[[Image, int], Image]


@dataclass
class Report:
    """What the run found, section by section (becomes quality.json)."""

    meta: dict[str, Any]
    skipped: list[str] = field(default_factory=list)
    detect: dict[str, Any] = field(default_factory=dict)
    remove: dict[str, Any] = field(default_factory=dict)
    upscale: dict[str, Any] = field(default_factory=dict)
    speed: dict[str, Any] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Methods:
    """The processors under test, built once (None = not available, reason in the report)."""

    detectors: dict[str, Detect]
    inpainters: dict[str, Inpaint]
    upscalers: dict[str, Upscale]
    versions: dict[str, str]


# -- entry point ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--seed", type=int, default=0, help="corpus seed")
    parser.add_argument(
        "--only", action="append", choices=SECTIONS, help="run only this section (repeatable)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (median)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch and cv2 threads (pixelgate's default, settings.torch_threads); onnxruntime"
        " keeps the detector's own default",
    )
    parser.add_argument("--limit", type=int, default=0, help="keep the first N cases of each kind")
    parser.add_argument("--inpaint-method", default="patch", help="our InpaintConfig.method")
    parser.add_argument("--inpaint-model", type=Path, default=None, help="InpaintConfig.model")
    parser.add_argument("--upscale-method", default="learned", help="our UpscaleConfig.method")
    parser.add_argument("--upscale-model", type=Path, default=None, help="UpscaleConfig.model")
    parser.add_argument("--device", default="cpu", help="torch device of our processors")
    parser.add_argument(
        "--text-dilation",
        type=int,
        default=None,
        help="our TextDetectorConfig.dilation (px the ink is grown by; default: the detector's)",
    )
    args = parser.parse_args()
    exit_on_sigterm()
    sections = tuple(args.only or SECTIONS)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    console = Console(stderr=True)
    started = time.perf_counter()

    corpus = _limited(build_corpus(args.seed), args.limit)
    report = Report(
        meta={
            "seed": args.seed,
            "sections": list(sections),
            "threads": args.threads,
            "device": args.device,
            "text_dilation": args.text_dilation,
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "cases": {
                "text": len(corpus.text_cases),
                "clean": len(corpus.clean_cases),
                "sr": len(corpus.sr_cases),
            },
            "corpus_s": round(time.perf_counter() - started, 2),
        }
    )
    methods = _build_methods(args, sections, report, console)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        timings: dict[str, float] = {}

        def timed(section: str, run: Callable[[], Any]) -> Any:
            start = time.perf_counter()
            result = run()
            timings[section] = time.perf_counter() - start
            progress.console.print(f"{section}: done in {timings[section]:.1f} s")
            return result

        masks: dict[str, dict[str, Image]] = {}
        if "detect" in sections or "remove" in sections:
            # removal alone needs only our detector's masks on the text cases
            full = "detect" in sections
            masks = timed("detect", lambda: _run_detectors(corpus, methods, progress, full=full))
            if "detect" in sections:
                report.detect = _detection(corpus, masks)
        if "remove" in sections:
            report.remove = timed("remove", lambda: _removal(corpus, methods, masks, progress))
        if "upscale" in sections:
            report.upscale = timed("upscale", lambda: _upscaling(corpus, methods, progress))
        if "speed" in sections:
            report.speed = timed("speed", lambda: _speed(corpus, methods, args.repeats, progress))
    report.meta["section_s"] = {k: round(v, 1) for k, v in timings.items()}
    report.checks = _checks(report)
    report.meta["versions"] = methods.versions
    report.meta["elapsed_s"] = round(time.perf_counter() - started, 1)

    args.out.mkdir(parents=True, exist_ok=True)
    payload = _finite(
        {
            "meta": report.meta,
            "skipped": report.skipped,
            "checks": report.checks,
            "detect": report.detect,
            "remove": report.remove,
            "upscale": report.upscale,
            "speed": report.speed,
        }
    )
    (args.out / "quality.json").write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")
    markdown = _markdown(report)
    (args.out / "quality.md").write_text(markdown)
    print(markdown)


def _limited(corpus: Corpus, limit: int) -> Corpus:
    if limit <= 0:
        return corpus
    return Corpus(
        seed=corpus.seed,
        text_cases=corpus.text_cases[:limit],
        clean_cases=corpus.clean_cases[:limit],
        sr_cases=corpus.sr_cases[:limit],
    )


# -- methods -------------------------------------------------------------------------------------


def _build_methods(
    args: argparse.Namespace, sections: Sequence[str], report: Report, console: Console
) -> Methods:
    """Build the processors the sections need, once; one that cannot be built is skipped."""
    methods = Methods(detectors={}, inpainters={}, upscalers={}, versions={})
    need = set(sections)

    def attempt(label: str, build: Callable[[], Any]) -> Any:
        try:
            built = build()
        except _SKIPPABLE as error:
            reason = f"{label}: skipped ({type(error).__name__}: {error})"
            report.skipped.append(reason)
            console.print(f"[yellow]{reason}[/yellow]")
            return None
        methods.versions[label] = str(getattr(built, "version", "?"))
        return built

    if need & {"detect", "remove", "speed"}:
        ours = attempt("detector ours", lambda: _our_detector(2, args.device, args.text_dilation))
        if ours is not None:
            methods.detectors["ours"] = ours
    if need & {"detect", "speed"}:
        morph = attempt("detector morph", _morph_detector)
        if morph is not None:
            methods.detectors["morph"] = morph
    if need & {"remove", "speed"}:
        _build_inpainters(args, methods, attempt)
    if need & {"upscale", "speed"}:
        _build_upscalers(args, methods, attempt)
    return methods


def _build_inpainters(
    args: argparse.Namespace, methods: Methods, attempt: Callable[[str, Callable[[], Any]], Any]
) -> None:
    inpainters = {
        "ours": lambda: _inpainter(args.inpaint_method, args.inpaint_model, args.device),
        "ours exact": lambda: _inpainter(
            args.inpaint_method, args.inpaint_model, args.device, dilate=0
        ),
        # The product's text removal: the fill (not grown), then semi-transparent overlays
        # un-blended and single-colour ink un-mixed, with a refill (processors.unblend), as
        # the inpaint stage and remove-text do.
        "ours removal": lambda: TextRemoval(
            _inpainter(args.inpaint_method, args.inpaint_model, args.device, dilate=0)
        ),
        # Our inpainter on the GT grown by 1 px: how tight our masks would have to be.
        "ours 1px": lambda: _inpainter(
            args.inpaint_method, args.inpaint_model, args.device, dilate=1
        ),
        "ns": lambda: _inpainter("ns", None, "cpu"),
        "telea": lambda: _inpainter("telea", None, "cpu"),
        # OpenCV given the exact GT mask as it is (no 3 px growth: the GT already holds every
        # pixel the overlay changed): the stricter reading of "OpenCV with the GT mask".
        "ns exact": lambda: _inpainter("ns", None, "cpu", dilate=0),
        "telea exact": lambda: _inpainter("telea", None, "cpu", dilate=0),
    }
    for name, build in inpainters.items():
        built = attempt(f"inpaint {name}", build)
        if built is not None:
            methods.inpainters[name] = built


def _build_upscalers(
    args: argparse.Namespace, methods: Methods, attempt: Callable[[str, Callable[[], Any]], Any]
) -> None:
    upscaler = attempt(
        "upscale ours", lambda: _upscaler(args.upscale_method, args.upscale_model, args.device)
    )
    if upscaler is not None:
        methods.upscalers["ours"] = lambda image, scale: upscaler([image], scale=scale)[0]
    methods.upscalers["lanczos"] = lambda image, scale: _cv2_resize(
        image, scale, cv2.INTER_LANCZOS4
    )
    methods.upscalers["bicubic"] = lambda image, scale: _cv2_resize(image, scale, cv2.INTER_CUBIC)
    methods.versions["upscale lanczos"] = "cv2.INTER_LANCZOS4"
    methods.versions["upscale bicubic"] = "cv2.INTER_CUBIC"


def _our_detector(threads: int, device: str, dilation: int | None = None) -> Any:
    from processors.text import TextDetector, TextDetectorConfig  # noqa: PLC0415

    fields = getattr(TextDetectorConfig, "__dataclass_fields__", {})
    knobs: dict[str, Any] = {"threads": threads} if "threads" in fields else {}
    if dilation is not None:
        knobs["dilation"] = dilation
    if "device" in fields and device.startswith("cuda"):
        knobs["device"] = "cuda"
    return TextDetector(TextDetectorConfig(**knobs))


def _morph_detector() -> Any:
    from bench.text_morph import MorphTextDetector  # noqa: PLC0415

    return MorphTextDetector()


def _inpainter(method: str, model: Path | None, device: str, dilate: int | None = None) -> Any:
    from processors.inpaint import InpaintConfig, Inpainter  # noqa: PLC0415

    knobs: dict[str, Any] = {"method": method}
    if dilate is not None:
        knobs["dilate"] = dilate
    if model is not None:
        knobs["model"] = model
    if method not in ("telea", "ns") and device != "cpu":
        knobs["device"] = device
    return Inpainter(InpaintConfig(**knobs))


def _upscaler(method: str, model: Path | None, device: str) -> Any:
    from processors.upscale import UpscaleConfig, Upscaler  # noqa: PLC0415

    knobs: dict[str, Any] = {"method": method}
    if model is not None:
        knobs["model"] = model
    if device != "cpu":
        knobs["device"] = device
    return Upscaler(UpscaleConfig(**knobs))


def _cv2_resize(image: Image, scale: int, interpolation: int) -> Image:
    height, width = image.shape[:2]
    return np.asarray(
        cv2.resize(image, (width * scale, height * scale), interpolation=interpolation), np.uint8
    )


# -- detection -----------------------------------------------------------------------------------


def _run_detectors(
    corpus: Corpus, methods: Methods, progress: Progress, *, full: bool
) -> dict[str, dict[str, Image]]:
    """Each detector's mask for every text and clean case, by detector then case name.

    ``full=False``: only our detector, only on the text cases (what removal needs).
    """
    images = [(c.name, c.image) for c in corpus.text_cases]
    if full:
        images += [(f"clean:{c.name}", c.image) for c in corpus.clean_cases]
    masks: dict[str, dict[str, Image]] = {}
    for name, detector in methods.detectors.items():
        if not full and name != "ours":
            continue
        task = progress.add_task(f"detect ({name})", total=len(images))
        masks[name] = {}
        for case_name, image in images:
            (result,) = detector([image])
            masks[name][case_name] = np.asarray(result.mask, np.uint8)
            progress.advance(task)
    return masks


def detection_scores(gt: Image, detected: Image) -> tuple[float, float]:
    """(pixel recall, false-positive area fraction) of one detected mask against its GT."""
    truth = gt > 0
    found = detected > 0
    recall = float((found & truth).sum() / max(1, truth.sum()))
    near = dilate_mask(gt, FP_DILATE) > 0
    fp_area = float((found & ~near).sum() / truth.size)
    return recall, fp_area


def _detection(corpus: Corpus, masks: dict[str, dict[str, Image]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for detector, found in masks.items():
        per_image: list[dict[str, Any]] = []
        for case in corpus.text_cases:
            recall, fp_area = detection_scores(case.mask, found[case.name])
            per_image.append(
                {
                    "name": case.name,
                    "background": case.background,
                    "kind": case.kind,
                    "font": case.font,
                    "gt_px": int((case.mask > 0).sum()),
                    "recall": recall,
                    "fp_area": fp_area,
                }
            )
        clean: list[dict[str, Any]] = []
        for clean_case in corpus.clean_cases:
            mask = found[f"clean:{clean_case.name}"] > 0
            clean.append(
                {
                    "name": clean_case.name,
                    "kind": clean_case.kind,
                    "flagged": bool(mask.any()),
                    "coverage": float(mask.mean()),
                }
            )
        by_kind = {
            kind: {
                "n": len(rows),
                "recall": _mean(r["recall"] for r in rows),
                "fp_area": _mean(r["fp_area"] for r in rows),
            }
            for kind, rows in _group(per_image, "kind").items()
        }
        out[detector] = {
            "summary": {
                "recall": _mean(r["recall"] for r in per_image),
                "recall_min": min((r["recall"] for r in per_image), default=math.nan),
                "fp_area": _mean(r["fp_area"] for r in per_image),
                "fp_area_max": max((r["fp_area"] for r in per_image), default=math.nan),
                "clean_flagged": _mean(float(r["flagged"]) for r in clean),
            },
            "by_kind": by_kind,
            "per_image": per_image,
            "clean": clean,
        }
    return out


# -- removal -------------------------------------------------------------------------------------


def _removal(
    corpus: Corpus, methods: Methods, masks: dict[str, dict[str, Image]], progress: Progress
) -> dict[str, Any]:
    """Each removal variant on every text case: PSNR in the dilated GT, SSIM over the image."""
    out: dict[str, Any] = {}
    for variant, (inpaint, source) in _removal_variants(methods, masks).items():
        task = progress.add_task(f"remove: {variant}", total=len(corpus.text_cases))
        per_image: list[dict[str, Any]] = []
        for case in corpus.text_cases:
            per_image.append(_removal_scores(case, inpaint, source, masks))
            progress.advance(task)
        groups = {**_group(per_image, "kind"), **_group(per_image, "source")}
        out[variant] = {
            "summary": _summary(per_image, ("psnr_region", "ssim_image")),
            "by_kind": {
                group: _summary(rows, ("psnr_region", "ssim_image"))
                for group, rows in groups.items()
            },
            "per_image": per_image,
        }
    return out


def _removal_variants(
    methods: Methods, masks: dict[str, dict[str, Image]]
) -> dict[str, tuple[Inpaint | None, str]]:
    """The removal rows that can run: row name -> (inpainter or None, mask source)."""
    variants: dict[str, tuple[Inpaint | None, str]] = {"no removal": (None, "gt")}
    if "ours removal" in methods.inpainters and "ours" in masks:
        # As the product removes text (processors.inpaint.edit_region, then
        # processors.unblend): the detector's masks already cover the outline and
        # antialiasing, so they are not grown again, only trimmed of the clean pixels on their
        # edge; semi-transparent overlays are un-blended rather than filled, the edges of
        # single-colour ink un-mixed.
        variants["ours (detected mask)"] = (methods.inpainters["ours removal"], "ours")
    if "ours exact" in methods.inpainters and "ours" in masks:
        # The same masks filled without un-blending: what processors.unblend adds.
        variants["ours (detected mask, fill only)"] = (methods.inpainters["ours exact"], "ours")
    if "ours" in methods.inpainters:
        variants["ours (GT mask)"] = (methods.inpainters["ours"], "gt")
    for name in ("ns", "telea"):
        if name in methods.inpainters:
            variants[f"{name} (GT mask)"] = (methods.inpainters[name], "gt")
    if "ours 1px" in methods.inpainters:
        variants["ours (GT mask grown 1 px)"] = (methods.inpainters["ours 1px"], "gt")
    for name in ("ours", "ns", "telea"):
        if f"{name} exact" in methods.inpainters:
            variants[f"{name} (GT mask, not grown)"] = (methods.inpainters[f"{name} exact"], "gt")
    return variants


def _removal_scores(
    case: TextCase, inpaint: Inpaint | None, source: str, masks: dict[str, dict[str, Image]]
) -> dict[str, Any]:
    """One text case through one removal row: PSNR in the dilated GT, SSIM over the image."""
    if source == "gt":
        mask = case.mask
    else:
        # As the product fills them: trimmed of the clean pixels on their edge.
        mask = edit_region(case.mask.shape, masks[source][case.name], image=case.image)
    result = case.image if inpaint is None else inpaint([case.image], [mask])[0]
    region = dilate_mask(case.mask, REMOVAL_DILATE)
    return {
        "name": case.name,
        "kind": case.kind,
        "source": _source(case.background),
        "psnr_region": min(psnr(case.clean, result, region), PSNR_CAP),
        "ssim_image": ssim(case.clean, result),
    }


# -- upscaling -----------------------------------------------------------------------------------


def luma_y(image: Image) -> np.ndarray:
    """BT.601 luma Y in [16, 235] as float64 (MATLAB ``rgb2ycbcr``'s first channel)."""
    rgb = np.asarray(image, np.float64)
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def sr_scores(hr: Image, sr: Image, shave: int = SHAVE) -> tuple[float, float]:
    """(PSNR-Y dB, SSIM-Y) of ``sr`` against ``hr``, ``shave`` px left out at every border."""
    if hr.shape != sr.shape:
        raise ValueError(f"sr_scores: hr is {hr.shape} but the upscaled image is {sr.shape}.")
    y_hr = luma_y(hr)[shave:-shave, shave:-shave]
    y_sr = luma_y(sr)[shave:-shave, shave:-shave]
    mse = float(np.mean((y_hr - y_sr) ** 2))
    psnr_y = PSNR_CAP if mse == 0.0 else min(PSNR_CAP, 10.0 * math.log10(255.0**2 / mse))
    ssim_y = float(
        _structural_similarity(
            y_hr,
            y_sr,
            data_range=255.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )
    return psnr_y, ssim_y


def _upscaling(corpus: Corpus, methods: Methods, progress: Progress) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for scale in (2, 4):
        task = progress.add_task(f"upscale x{scale}", total=len(corpus.sr_cases))
        per_image: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for case in corpus.sr_cases:
            low = case.lr2 if scale == 2 else case.lr4
            for name, upscale in methods.upscalers.items():
                psnr_y, ssim_y = sr_scores(case.hr, upscale(low, scale))
                per_image[name].append(
                    {
                        "name": case.name,
                        "source": _source(case.name),
                        "psnr_y": psnr_y,
                        "ssim_y": ssim_y,
                    }
                )
            progress.advance(task)
        out[f"x{scale}"] = {
            name: {
                "summary": _summary(rows, ("psnr_y", "ssim_y")),
                "by_source": {
                    source: _summary(group, ("psnr_y", "ssim_y"))
                    for source, group in _group(rows, "source").items()
                },
                "per_image": rows,
            }
            for name, rows in per_image.items()
        }
    return out


# -- speed ---------------------------------------------------------------------------------------


def _trim_all(images: list[Image], masks: list[Image]) -> list[Image]:
    return [trim_text_mask(image, mask) for image, mask in zip(images, masks, strict=True)]


def _speed(corpus: Corpus, methods: Methods, repeats: int, progress: Progress) -> dict[str, Any]:
    """Median seconds per megapixel of each stage and method on a fixed sample of images."""
    cases = [
        c for c in corpus.text_cases if c.kind == "caption" and c.background in SPEED_SAMPLE
    ] or corpus.text_cases[:3]
    images = [c.image for c in cases]
    gt_masks = [c.mask for c in cases]
    in_mp = sum(im.shape[0] * im.shape[1] for im in images) / 1e6
    sr = [c for c in corpus.sr_cases if c.name in SPEED_SAMPLE] or corpus.sr_cases[:3]
    rows: list[dict[str, Any]] = []
    jobs: list[tuple[str, str, Callable[[], Any], float]] = []
    for name, detector in methods.detectors.items():
        jobs.append(("detect", name, partial(detector, images), in_mp))
    for name, inpaint in methods.inpainters.items():
        if name == "ours 1px":  # the same work as "ours": a quality variant only
            continue
        jobs.append(("inpaint (GT mask)", name, partial(inpaint, images, gt_masks), in_mp))
    # The product trims a detector's mask before filling it; timed on the GT grown 3 px (about
    # the detector's growth), which it peels back.
    grown = [dilate_mask(mask, REMOVAL_DILATE) for mask in gt_masks]
    jobs.append(("trim text mask", "ours", partial(_trim_all, images, grown), in_mp))
    for scale in (2, 4):
        lows = [c.lr2 if scale == 2 else c.lr4 for c in sr]
        out_mp = sum(c.hr.shape[0] * c.hr.shape[1] for c in sr) / 1e6
        for name, upscale in methods.upscalers.items():
            jobs.append(
                (
                    f"upscale x{scale} (per output MP)",
                    name,
                    partial(_upscale_all, upscale, lows, scale),
                    out_mp,
                )
            )
    task = progress.add_task("speed", total=len(jobs))
    for stage, name, job, megapixels in jobs:
        start = time.perf_counter()
        job()  # warm-up: lazy initialisation, caches
        first = time.perf_counter() - start
        # a slow method is timed once more rather than ``repeats`` times (keeps the run short)
        runs = 1 if first > SLOW_RUN_S else repeats
        seconds = median_seconds(job, runs)
        rows.append(
            {
                "stage": stage,
                "method": name,
                "s_per_mp": seconds / megapixels,
                "seconds": seconds,
                "runs": runs,
            }
        )
        progress.advance(task)
    return {
        "images": [c.name for c in cases],
        "sr_images": [c.name for c in sr],
        "repeats": repeats,
        "rows": rows,
    }


def _upscale_all(upscale: Upscale, images: list[Image], scale: int) -> list[Image]:
    return [upscale(image, scale) for image in images]


# -- targets -------------------------------------------------------------------------------------


def _checks(report: Report) -> list[dict[str, Any]]:
    """The target rows: what, target, figure, pass/fail."""
    checks: list[dict[str, Any]] = []

    def add(row: str, target: str, figure: float, passed: bool, unit: str = "") -> None:
        checks.append(
            {"row": row, "target": target, "figure": figure, "unit": unit, "pass": passed}
        )

    for detector in ("ours", "morph"):
        summary = report.detect.get(detector, {}).get("summary")
        if summary is None:
            continue
        label = "ours" if detector == "ours" else "morph baseline"
        add(
            f"detection pixel recall ({label})",
            ">= 0.95",
            summary["recall"],
            summary["recall"] >= TARGET_RECALL,
        )
        add(
            f"FP area outside dilated text ({label})",
            "<= 0.2 %",
            100 * summary["fp_area"],
            summary["fp_area"] <= TARGET_FP_AREA,
            "%",
        )
        add(
            f"clean images with any mask ({label})",
            "<= 5 %",
            100 * summary["clean_flagged"],
            summary["clean_flagged"] <= TARGET_CLEAN_FLAGGED,
            "%",
        )
    removal = {k: v["summary"] for k, v in report.remove.items()}
    ours = removal.get("ours (detected mask)")
    # Every inpainter grows its mask by 3 px before filling; the "not grown" rows give OpenCV
    # the exact GT mask instead, the stricter baseline. Both readings are checked.
    for suffix, note in (("", "GT grown 3 px"), (", not grown", "exact GT")):
        ns_key, telea_key = f"ns (GT mask{suffix})", f"telea (GT mask{suffix})"
        if ours is not None and ns_key in removal:
            ns = removal[ns_key]["psnr_region"]
            add(
                f"removal PSNR in dilated text: ours (detected) vs NS ({note})",
                f">= {ns:.2f} dB",
                ours["psnr_region"],
                ours["psnr_region"] >= ns,
                "dB",
            )
        if ours is not None and telea_key in removal:
            telea = removal[telea_key]["ssim_image"]
            add(
                f"removal SSIM whole image: ours (detected) vs Telea ({note})",
                f">= {telea:.4f}",
                ours["ssim_image"],
                ours["ssim_image"] >= telea,
            )
    for scale in (2, 4):
        table = report.upscale.get(f"x{scale}", {})
        if "ours" not in table or "lanczos" not in table:
            continue
        mine, lanczos = table["ours"]["summary"], table["lanczos"]["summary"]
        gain = TARGET_GAIN_DB[scale]
        add(
            f"upscale x{scale} PSNR-Y: ours vs Lanczos",
            f">= {lanczos['psnr_y']:.2f} + {gain} dB",
            mine["psnr_y"],
            mine["psnr_y"] >= lanczos["psnr_y"] + gain,
            "dB",
        )
        add(
            f"upscale x{scale} SSIM-Y: ours vs Lanczos",
            f"> {lanczos['ssim_y']:.4f}",
            mine["ssim_y"],
            mine["ssim_y"] > lanczos["ssim_y"],
        )
    return checks


# -- output --------------------------------------------------------------------------------------


def _markdown(report: Report) -> str:
    """``quality.md``: the header, then a section per benchmark that ran."""
    lines = _md_header(report)
    sections = (
        (report.checks, _md_targets),
        (report.detect, _md_detection),
        (report.remove, _md_removal),
        (report.upscale, _md_upscaling),
        (report.speed, _md_speed),
    )
    for present, render in sections:
        if present:
            lines += render(report)
    return "\n".join(lines)


def _md_header(report: Report) -> list[str]:
    """Title, corpus, machine and timing line, versions, and what was skipped."""
    meta = report.meta
    lines = [
        "# Quality benchmark",
        "",
        f"Corpus seed {meta['seed']}: {meta['cases']['text']} text cases, "
        f"{meta['cases']['clean']} clean images, {meta['cases']['sr']} HR/LR pairs. "
        f"Threads {meta['threads']}, device {meta['device']}, {meta['elapsed_s']} s in all "
        f"(corpus {meta['corpus_s']} s; "
        + ", ".join(f"{k} {v} s" for k, v in meta.get("section_s", {}).items())
        + ").",
        "",
        "Versions: " + ", ".join(f"{k} `{v}`" for k, v in meta.get("versions", {}).items()),
        "",
    ]
    if meta.get("text_dilation") is not None:
        lines += [f"Our detector's dilation: {meta['text_dilation']} px (not the default).", ""]
    if report.skipped:
        lines += ["**Skipped:**", "", *[f"- {reason}" for reason in report.skipped], ""]
    return lines


def _md_targets(report: Report) -> list[str]:
    """The target checks."""
    return [
        "## Targets",
        "",
        *_table(
            ["check", "target", "figure", "result"],
            [
                [
                    c["row"],
                    c["target"],
                    f"{c['figure']:.4g} {c['unit']}".strip(),
                    "pass" if c["pass"] else "**FAIL**",
                ]
                for c in report.checks
            ],
        ),
    ]


def _md_detection(report: Report) -> list[str]:
    """Detection by kind, per image, and on the clean images."""
    lines = ["## Detection by kind", ""]
    rows = []
    for detector, data in report.detect.items():
        rows += [
            [detector, kind, str(v["n"]), f"{v['recall']:.3f}", f"{100 * v['fp_area']:.3f}"]
            for kind, v in data["by_kind"].items()
        ]
    lines += _table(["detector", "kind", "n", "pixel recall", "FP area %"], rows)
    detectors = list(report.detect)
    lines += ["## Detection per image", ""]
    first = report.detect[detectors[0]]["per_image"]
    rows = []
    for index, row in enumerate(first):
        cells = [row["name"], row["font"], str(row["gt_px"])]
        for detector in detectors:
            other = report.detect[detector]["per_image"][index]
            cells += [f"{other['recall']:.3f}", f"{100 * other['fp_area']:.3f}"]
        rows.append(cells)
    headers = ["case", "font", "GT px"]
    for detector in detectors:
        headers += [f"recall {detector}", f"FP % {detector}"]
    lines += _table(headers, rows)
    lines += ["## Clean images (any mask = false alarm)", ""]
    first_clean = report.detect[detectors[0]]["clean"]
    rows = []
    for index, row in enumerate(first_clean):
        cells = [row["name"], row["kind"]]
        for detector in detectors:
            other = report.detect[detector]["clean"][index]
            cells.append(f"{100 * other['coverage']:.3f}" + (" (flagged)" * other["flagged"]))
        rows.append(cells)
    lines += _table(["image", "kind", *[f"mask % {d}" for d in detectors]], rows)
    return lines


def _md_removal(report: Report) -> list[str]:
    """Removal by kind and source, and per image."""
    lines = [
        "## Removal by kind and source (PSNR dB inside dilate(GT, 3) / SSIM whole image)",
        "",
        f"Means cap each image's PSNR at {PSNR_MEAN_CAP:g} dB (per-image tables do not).",
        "",
    ]
    variants = list(report.remove)
    kinds = list(report.remove[variants[0]]["by_kind"])
    rows = [
        [
            variant,
            "all",
            f"{data['summary']['psnr_region']:.2f}",
            f"{data['summary']['ssim_image']:.4f}",
        ]
        for variant, data in report.remove.items()
    ]
    for kind in kinds:
        rows += [
            [
                variant,
                kind,
                f"{data['by_kind'][kind]['psnr_region']:.2f}",
                f"{data['by_kind'][kind]['ssim_image']:.4f}",
            ]
            for variant, data in report.remove.items()
        ]
    lines += _table(["method", "kind", "PSNR region", "SSIM image"], rows)
    lines += ["## Removal per image (PSNR region dB / SSIM image)", ""]
    rows = []
    for index, row in enumerate(report.remove[variants[0]]["per_image"]):
        cells = [row["name"]]
        for variant in variants:
            other = report.remove[variant]["per_image"][index]
            cells.append(f"{other['psnr_region']:.2f} / {other['ssim_image']:.4f}")
        rows.append(cells)
    lines += _table(["case", *variants], rows)
    return lines


def _md_upscaling(report: Report) -> list[str]:
    """Upscaling means (all, by source) and per image."""
    lines = [
        "## Upscaling (PSNR-Y dB / SSIM-Y, 4 px shaved)",
        "",
        f"Means cap each image's PSNR at {PSNR_MEAN_CAP:g} dB (per-image rows do not).",
        "",
    ]
    rows = []
    for scale_name, table in report.upscale.items():
        names = list(table)
        rows.append(
            [f"**mean {scale_name}**"]
            + [
                f"{table[n]['summary']['psnr_y']:.2f} / {table[n]['summary']['ssim_y']:.4f}"
                for n in names
            ]
        )
        for source in table[names[0]]["by_source"]:
            rows.append(
                [f"mean {scale_name} {source}"]
                + [
                    f"{table[n]['by_source'][source]['psnr_y']:.2f} / "
                    f"{table[n]['by_source'][source]['ssim_y']:.4f}"
                    for n in names
                ]
            )
        for index, row in enumerate(table[names[0]]["per_image"]):
            cells = [f"{row['name']} {scale_name}"]
            for name in names:
                other = table[name]["per_image"][index]
                cells.append(f"{other['psnr_y']:.2f} / {other['ssim_y']:.4f}")
            rows.append(cells)
    names = list(next(iter(report.upscale.values())))
    lines += _table(["image", *names], rows)
    return lines


def _md_speed(report: Report) -> list[str]:
    """Seconds per megapixel of each stage and method."""
    lines = [
        "## Speed (median s per megapixel, this machine)",
        "",
        f"Images: {', '.join(report.speed['images'])}; SR: "
        f"{', '.join(report.speed['sr_images'])}; {report.speed['repeats']} repeats.",
        "",
    ]
    lines += _table(
        ["stage", "method", "s/MP", "timed runs"],
        [
            [r["stage"], r["method"], f"{r['s_per_mp']:.4f}", str(r["runs"])]
            for r in report.speed["rows"]
        ],
    )
    return lines


def _table(headers: list[str], rows: Iterable[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join("---" for _ in headers) + " |",
        *["| " + " | ".join(row) + " |" for row in rows],
        "",
    ]


def _source(background: str) -> str:
    return "photos" if background in PHOTOS else "renders"


def _summary(rows: list[dict[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    """``n`` and the mean of each key; PSNRs (keys starting ``psnr``) capped first."""
    out: dict[str, Any] = {"n": len(rows)}
    for key in keys:
        values = [float(r[key]) for r in rows]
        if key.startswith("psnr"):
            values = [min(v, PSNR_MEAN_CAP) for v in values]
        out[key] = _mean(values)
    return out


def _mean(values: Iterable[float]) -> float:
    items = [v for v in values if not math.isnan(v)]
    return statistics.fmean(items) if items else math.nan


def _group(rows: list[dict[str, Any]], key: str) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row[key]].append(row)
    return dict(groups)


def _finite(value: Any) -> Any:
    """``value`` with NaN as None and infinities capped, so the JSON is strict."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return math.copysign(PSNR_CAP, value)
    return value


if __name__ == "__main__":
    main()
