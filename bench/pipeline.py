"""Benchmark: preflight against a bare Pillow baseline, and the embedded pipeline end to end.

Side by side in one run, on the same generated sample (this machine is shared and noisy: read
the ratios, not the absolute figures). Writes ``<out>/pipeline.json`` and ``<out>/pipeline.md``.

    python -m bench.pipeline --out bench/results [--count 30] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import platform
import statistics
from pathlib import Path

from PIL import Image, ImageOps

from bench.common import median_seconds
from consumers.dev.sample import generate_sample
from consumers.embedded import run_embedded
from consumers.settings import Settings
from consumers.uploads import collect_inputs
from processors.preflight import Preflight
from schemas.events import Operations


def baseline_decode(data: bytes) -> tuple[int, int]:
    """What a service without preflight does: open, orient, convert, shrink. No safety checks."""
    with Image.open(io.BytesIO(data)) as image:
        upright = ImageOps.exif_transpose(image).convert("RGB")
        upright.thumbnail((2048, 2048), Image.Resampling.LANCZOS)
        return upright.size




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--count", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sample = args.out / "sample"
    items = generate_sample(sample, args.count, seed=0)
    ok = [sample / "upload" / i.file for i in items if i.expected_status == "ok"]
    blobs = [p.read_bytes() for p in ok]

    preflight = Preflight()
    ours_s = median_seconds(lambda: preflight(blobs), args.repeats)
    base_s = median_seconds(lambda: [baseline_decode(b) for b in blobs], args.repeats)

    files = collect_inputs(sample / "upload")
    runs = []
    for index in range(args.repeats):
        run = asyncio.run(
            run_embedded(files, args.out / f"run{index}", Settings(),
                         operations=Operations(upscale_to=1600))
        )
        runs.append(run)
    elapsed = statistics.median(r.elapsed_s for r in runs)
    stage_ms: dict[str, list[float]] = {}
    for row in runs[0].rows:
        for stage, ms in row.record["timings_ms"].items():
            stage_ms.setdefault(stage, []).append(ms)
    statuses: dict[str, int] = {}
    for row in runs[0].rows:
        statuses[row.record["status"]] = statuses.get(row.record["status"], 0) + 1

    figures = {
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or "?",
                    "note": "shared 2-core machine; compare ratios within this run"},
        "preflight": {
            "files": len(blobs),
            "ours_s_per_image": ours_s / len(blobs),
            "pillow_baseline_s_per_image": base_s / len(blobs),
            "ratio_ours_over_baseline": ours_s / base_s,
        },
        "pipeline": {
            "files": len(files),
            "statuses": statuses,
            "elapsed_s_median": elapsed,
            "images_per_s": len(files) / elapsed,
            "s_per_image": elapsed / len(files),
            "stage_ms_mean": {k: statistics.mean(v) for k, v in sorted(stage_ms.items())},
        },
    }
    (args.out / "pipeline.json").write_text(json.dumps(figures, indent=2) + "\n")
    pf, pl = figures["preflight"], figures["pipeline"]
    lines = [
        "# pipeline benchmark",
        "",
        "| what | ours | baseline | ratio |",
        "| --- | --- | --- | --- |",
        f"| preflight s/image ({pf['files']} accepted files) | {pf['ours_s_per_image']:.4f} | "
        f"{pf['pillow_baseline_s_per_image']:.4f} (bare Pillow, no checks) | "
        f"{pf['ratio_ours_over_baseline']:.2f}x |",
        "",
        f"Embedded pipeline: {pl['files']} files in {pl['elapsed_s_median']:.2f} s (median of "
        f"{args.repeats}), {pl['images_per_s']:.2f} images/s, {pl['s_per_image']:.3f} s/image.",
        f"Statuses: {pl['statuses']}.",
        "",
        "| stage | mean ms per item |",
        "| --- | --- |",
        *[f"| {k} | {v:.1f} |" for k, v in pl["stage_ms_mean"].items()],
        "",
    ]
    (args.out / "pipeline.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
