"""The patch method of :class:`processors.inpaint.Inpainter`: structure from a smooth fill,
texture from multi-scale PatchMatch, and OpenCV's frequency-selective reconstruction for thin
holes on a textured background.

Structure: a push-pull pyramid with Jacobi relaxation of Laplace's equation (a membrane), then
conjugate-gradient steps towards the biharmonic (thin-plate) solution, which continues
gradients and shading across the hole. Texture: PatchMatch (:mod:`processors.inpaint_match`)
coarse to fine, with similarity-weighted voting; the matched sources' detail (what a blur does
not explain) is added onto the smooth fill with gain ``InpaintConfig.texture``. The work is
bounded to a crop around the hole, the smooth solver touches only the hole's pixels, and the
pyramid is only as deep as the hole is thick.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import cv2
import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812 - the conventional name

from processors.inpaint_match import PatchMatcher
from processors.tensors import Image, Mask
from processors.trim import TEXTURE_WINDOW, box_around, texture_level

if TYPE_CHECKING:
    from processors.inpaint import InpaintConfig

__all__ = ["fill_thin", "patch_inpaint", "pyramid_depth", "smooth_fill", "thin_holes"]

_MAX_LEVELS = 6
"""Deepest pyramid the patch method builds (a 64x coarser level is plenty for any hole)."""
_BIHARMONIC = 200
"""Most conjugate-gradient steps that take the membrane fill towards the biharmonic one."""
_CG_TOLERANCE = 1e-4
"""The solver stops once the squared residual has shrunk by this factor."""


_FSR_MARGIN = 32
"""Known context, px, kept around the thin holes for the frequency-selective fill."""
_THIN_RING = 4
"""Px around a thin hole whose texture level says whether its background is textured."""


def thin_holes(image: Image, grown: Mask, config: InpaintConfig) -> npt.NDArray[np.bool_]:
    """The pixels of the holes in ``grown`` that ``config.thin`` sends to the FSR fill."""
    selected = np.zeros(grown.shape, dtype=bool)
    if config.thin <= 0:
        return selected
    hole = (grown > 0).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(hole)
    depth = cv2.distanceTransform(hole, cv2.DIST_L2, 3)
    reach = _THIN_RING + 1
    windows = []
    for label in range(1, count):
        x, y, w, h = (int(v) for v in stats[label, :4])
        window = (slice(max(0, y - reach), y + h + reach), slice(max(0, x - reach), x + w + reach))
        part = labels[window] == label
        if float(depth[window][part].max()) <= config.thin:
            windows.append((window, part))
    if not windows:
        return selected
    # The texture level once, over the box all the holes' rings lie in.
    box = box_around(hole > 0, reach + TEXTURE_WINDOW // 2)
    level = np.zeros(grown.shape, np.float32)
    level[box] = texture_level(image[box].astype(np.int16), hole[box] == 0)
    element = np.ones((2 * _THIN_RING + 1, 2 * _THIN_RING + 1), np.uint8)
    for window, part in windows:
        ring = (cv2.dilate(part.astype(np.uint8), element) > 0) & (hole[window] == 0)
        if ring.any() and float(np.median(level[window][ring])) >= config.thin_texture:
            selected[window] |= part
    return selected


def fill_thin(filled: Image, image: Image, grown: Mask, thin: npt.NDArray[np.bool_]) -> None:
    """Put into ``filled`` (in place) the pixels of ``thin`` as OpenCV's frequency-selective
    reconstruction fills the holes of ``grown`` in ``image``, on a crop reaching
    ``_FSR_MARGIN`` px beyond them."""
    box = box_around(thin, _FSR_MARGIN)
    crop = np.ascontiguousarray(image[box])
    known = np.where(grown[box] > 0, np.uint8(0), np.uint8(255)).astype(np.uint8)
    reconstructed = np.zeros_like(crop)
    cv2.xphoto.inpaint(crop, known, reconstructed, cv2.xphoto.INPAINT_FSR_FAST)
    inside = thin[box]
    filled[box][inside] = reconstructed[inside]


def patch_inpaint(image: Image, grown: Mask, config: InpaintConfig, device: torch.device) -> Image:
    """Fill ``grown`` in ``image`` by membrane fill + multi-scale PatchMatch, on a crop."""
    height, width = grown.shape
    rows = np.flatnonzero(grown.any(axis=1))
    cols = np.flatnonzero(grown.any(axis=0))
    extent = max(int(rows[-1] - rows[0]), int(cols[-1] - cols[0])) + 1
    margin = max(config.margin, extent // 2)
    top, bottom = max(0, int(rows[0]) - margin), min(height, int(rows[-1]) + margin + 1)
    left, right = max(0, int(cols[0]) - margin), min(width, int(cols[-1]) + margin + 1)
    crop_hole = grown[top:bottom, left:right] > 0
    thickness = float(cv2.distanceTransform(crop_hole.astype(np.uint8), cv2.DIST_L2, 3).max())
    crop = image[top:bottom, left:right]
    x = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1))).to(device).float() / 255.0
    hole = torch.from_numpy(np.ascontiguousarray(crop_hole)).to(device)
    filled = _synthesise(x, hole, thickness, config)
    out = image.copy()
    patch = filled.clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8).cpu().numpy()
    out[top:bottom, left:right] = patch.transpose(1, 2, 0)
    return out


def _synthesise(
    x: torch.Tensor, hole: torch.Tensor, thickness: float, config: InpaintConfig
) -> torch.Tensor:
    """Fill ``hole`` (HW bool) in ``x`` (3HW float): membrane fill, then coarse-to-fine
    PatchMatch with voting. Returns the whole crop (known pixels unchanged)."""
    generator = torch.Generator().manual_seed(config.seed)
    smooth = smooth_fill(x, hole)
    levels = pyramid_depth(thickness, tuple(x.shape[1:]), config.patch_size)
    images = [smooth]
    holes = [hole]
    for _ in range(levels):
        images.append(_down(images[-1]))
        holes.append(_down_mask(holes[-1]))
    matcher, nnf = _match_coarse_to_fine(images, holes, config, generator)
    if matcher is None or nnf is None or config.texture == 0.0:
        return smooth
    # Structure from the membrane, texture from the patches: the matched sources' detail
    # (what a blur of the filled crop does not explain) is voted into the hole and added on.
    detail = smooth - _blur(smooth, config.patch_size / 3.0)
    return smooth + config.texture * matcher.vote(nnf, detail)


def smooth_fill(x: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """The structure of the fill: the membrane fill of ``hole`` in ``x`` (3HW float), taken
    towards the biharmonic (thin-plate) one."""
    smooth = _membrane_fill(x, hole)
    if _BIHARMONIC > 0:
        smooth = _biharmonic_fill(smooth, hole, _BIHARMONIC)
    return smooth


def pyramid_depth(thickness: float, shape: tuple[int, ...], patch_size: int) -> int:
    """How many times to halve a crop of ``shape`` (H, W) whose hole is ``thickness`` px from
    edge to middle: until the hole is about a patch thick, while a level still holds a few
    patches of context (at most ``_MAX_LEVELS``)."""
    radius = patch_size // 2
    levels = 0
    while (
        levels < _MAX_LEVELS
        and thickness / 2**levels > 2 * radius
        and min(shape) / 2 ** (levels + 1) >= 4 * patch_size
    ):
        levels += 1
    return levels


def _match_coarse_to_fine(
    images: list[torch.Tensor], holes: list[torch.Tensor], config: InpaintConfig,
    generator: torch.Generator,
) -> tuple[PatchMatcher | None, torch.Tensor | None]:
    """PatchMatch from the coarsest level (the last of ``images``) to the finest, each level
    starting from the coarser one's matches: the finest level's matcher and matches (None
    where it has no usable sources)."""
    levels = len(images) - 1
    nnf: torch.Tensor | None = None
    matcher: PatchMatcher | None = None
    for level in range(levels, -1, -1):
        matcher = PatchMatcher(images[level], holes[level], config.patch_size, generator)
        if not matcher.usable:
            nnf = None
            continue
        steps = config.em_steps - 1 if level == 0 and levels > 0 else config.em_steps
        nnf = _expectation_maximisation(matcher, nnf, max(1, steps), config.iterations)
        if level > 0:
            # The finer level starts from its membrane fill; its NNF from this one's.
            nnf = _up_nnf(nnf, tuple(holes[level - 1].shape))
    return matcher, nnf


def _expectation_maximisation(
    matcher: PatchMatcher, nnf: torch.Tensor | None, steps: int, iterations: int
) -> torch.Tensor:
    """``steps`` match-then-vote rounds on one level (``iterations`` PatchMatch sweeps each),
    from the coarser level's matches ``nnf`` (None: random ones); returns the matches."""
    coarse = nnf is not None
    grid = matcher.initial(nnf)
    if coarse:
        # Start the hole from what the coarser level's matches say, not the membrane.
        matcher.update(matcher.vote(grid), grid)
    for _ in range(steps):
        for _ in range(iterations):
            grid = matcher.sweep(grid)
        matcher.update(matcher.vote(grid), grid)
    return grid


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a 3HW image (edges replicated)."""
    reach = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-reach, reach + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-(taps * taps) / (2 * sigma * sigma))
    kernel = kernel / kernel.sum()
    rows = F.pad(x[None], (0, 0, reach, reach), mode="replicate")
    rows = F.conv2d(rows, kernel.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
    cols = F.pad(rows, (reach, reach, 0, 0), mode="replicate")
    return F.conv2d(cols, kernel.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)[0]


def _biharmonic_fill(x: torch.Tensor, hole: torch.Tensor, iterations: int) -> torch.Tensor:
    """Refine the fill of ``hole`` in ``x`` (3HW, hole pre-filled) towards the biharmonic
    (thin-plate) solution: minimise the sum of squared 5-point Laplacians over the pixels whose
    Laplacian touches the hole, by conjugate gradients on the hole pixels only (sparse
    stencils, so the cost follows the hole's area, not the crop's). Unlike the membrane it
    continues gradients across the hole, not just values."""
    height, width = hole.shape
    unknown = torch.nonzero(hole.flatten()).flatten()
    interior = torch.zeros_like(hole)
    interior[1:-1, 1:-1] = True
    touched = F.max_pool2d(hole[None, None].float(), 3, stride=1, padding=1)[0, 0] > 0
    centres = torch.nonzero((touched & interior).flatten()).flatten()
    if len(unknown) == 0 or len(centres) == 0:
        return x
    steps = torch.tensor([0, -1, 1, -width, width], device=x.device)
    weights = torch.tensor([-4.0, 1.0, 1.0, 1.0, 1.0], device=x.device, dtype=x.dtype)
    # Work on the band of pixels the stencils reach, indexed compactly.
    reach = F.max_pool2d(hole[None, None].float(), 5, stride=1, padding=2)[0, 0] > 0
    band = torch.nonzero(reach.flatten()).flatten()
    lookup = torch.full((height * width,), -1, dtype=torch.long, device=x.device)
    lookup[band] = torch.arange(len(band), device=x.device)
    stencil = lookup[centres[:, None] + steps[None, :]]
    unknown = lookup[unknown]
    size = len(band)

    def gradient(values: torch.Tensor) -> torch.Tensor:
        laplacians = (values[:, stencil] * weights).sum(dim=2)
        back = torch.zeros(3, size, device=x.device, dtype=x.dtype)
        back.index_add_(1, stencil.flatten(), (laplacians[:, :, None] * weights).reshape(3, -1))
        return back[:, unknown]

    def apply(direction: torch.Tensor) -> torch.Tensor:
        values = torch.zeros(3, size, device=x.device, dtype=x.dtype)
        values[:, unknown] = direction
        return gradient(values)

    flat = x.reshape(3, -1).clone()
    current = flat[:, band]
    residual = -gradient(current)
    direction = residual.clone()
    rr = (residual * residual).sum(dim=1, keepdim=True)
    target = rr.max() * _CG_TOLERANCE
    for step in range(iterations):
        if step % 16 == 0 and bool(rr.max() <= target):
            break
        ad = apply(direction)
        alpha = rr / (direction * ad).sum(dim=1, keepdim=True).clamp_min(1e-20)
        current[:, unknown] += alpha * direction
        residual = residual - alpha * ad
        new_rr = (residual * residual).sum(dim=1, keepdim=True)
        direction = residual + new_rr / rr.clamp_min(1e-20) * direction
        rr = new_rr
    flat[:, band] = current
    return flat.reshape(x.shape)


def _down(x: torch.Tensor) -> torch.Tensor:
    """Halve a 3HW image (2x2 box average, odd sides edge-replicated)."""
    h, w = x.shape[1:]
    padded = F.pad(x[None], (0, w % 2, 0, h % 2), mode="replicate")
    return F.avg_pool2d(padded, 2)[0]


def _down_mask(hole: torch.Tensor) -> torch.Tensor:
    """Halve a HW bool hole: a coarse pixel is in the hole if any of its children is."""
    return F.max_pool2d(hole[None, None].float(), 2, ceil_mode=True)[0, 0] > 0


def _up_nnf(nnf: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Double a (2, h, w) field of source coordinates to ``shape`` (H, W)."""
    height, width = shape[0], shape[1]
    ys = torch.arange(height, device=nnf.device)
    xs = torch.arange(width, device=nnf.device)
    coarse = nnf[:, (ys // 2)[:, None], (xs // 2)[None, :]]
    fine_y = (coarse[0] * 2 + (ys % 2)[:, None]).clamp(0, height - 1)
    fine_x = (coarse[1] * 2 + (xs % 2)[None, :]).clamp(0, width - 1)
    return torch.stack([fine_y, fine_x])


def _membrane_fill(x: torch.Tensor, hole: torch.Tensor, relax: int = 24) -> torch.Tensor:
    """Smooth fill of ``hole``: push-pull over a pyramid, then Jacobi relaxation of Laplace's
    equation at each level on the way up (a membrane: continues gradients exactly)."""
    known = (~hole).float()[None]
    values = [x * known]
    weights = [known]
    while min(values[-1].shape[1:]) > 2 and bool((weights[-1] == 0).any()):
        v, k = values[-1], weights[-1]
        h, w = v.shape[1:]
        pad = (0, w % 2, 0, h % 2)
        num = F.avg_pool2d(F.pad(v[None], pad, mode="replicate"), 2)[0]
        den = F.avg_pool2d(F.pad(k[None], pad, mode="replicate"), 2)[0]
        values.append(torch.where(den > 0, num / den.clamp_min(1e-8), torch.zeros_like(num)))
        weights.append((den > 0).float())
    coarsest, cover = values[-1], weights[-1]
    if bool((cover == 0).any()):
        total = cover.sum()
        mean = (coarsest * cover).sum(dim=(1, 2), keepdim=True) / total.clamp_min(1.0)
        fill = mean if bool(total > 0) else torch.full_like(mean, 0.5)
        coarsest = torch.where(cover > 0, coarsest, fill.expand_as(coarsest))
    result = coarsest
    for v, k in zip(reversed(values[:-1]), reversed(weights[:-1]), strict=True):
        up = F.interpolate(
            result[None], size=tuple(v.shape[1:]), mode="bilinear", align_corners=False
        )[0]
        free = k == 0
        result = torch.where(free, up, v)
        for _ in range(relax):
            p = F.pad(result[None], (1, 1, 1, 1), mode="replicate")[0]
            neighbours = (p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:]) / 4
            result = torch.where(free, neighbours, v)
    return result

