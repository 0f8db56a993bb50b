"""PatchMatch over one pyramid level of the patch inpainter (:mod:`processors.inpaint_patch`).

For every pixel whose patch touches the hole, the known patch that looks most like it: random
initialisation (or the coarser level's matches), jump-flood propagation and random search in
shrinking windows, all vectorised with gathers. Patches are compared on their leading principal
components, computed once per level with one convolution. :meth:`PatchMatcher.vote` turns the
matches into pixel values (similarity-weighted voting).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional name

__all__ = ["PatchMatcher"]

_PCA_DIMS = 16
"""Principal components of the patches that PatchMatch compares."""
_PCA_SAMPLE = 4096
"""Known patches sampled to find those components."""
_ANCHOR_FLOOR = 0.05
"""Least vote weight of a patch with no known pixels (votes scale with the known share)."""


class PatchMatcher:
    """PatchMatch over one pyramid level: targets are the pixels whose patch touches the hole,
    sources the pixels whose whole patch lies in known pixels inside the crop."""

    def __init__(
        self, x: torch.Tensor, hole: torch.Tensor, patch: int, generator: torch.Generator
    ) -> None:
        self.device = x.device
        self.generator = generator
        self.radius = patch // 2
        self.hole = hole
        r = self.radius
        self.height, self.width = hole.shape
        self.padded_width = self.width + 2 * r
        holef = hole[None, None].float()
        touched = F.max_pool2d(F.pad(holef, (r, r, r, r), value=1.0), patch, stride=1)[0, 0]
        self.valid = touched == 0
        self.usable = bool(self.valid.any()) and bool(hole.any())
        near = F.max_pool2d(holef, patch, stride=1, padding=r)[0, 0] > 0
        self.targets = torch.nonzero(near.flatten()).flatten()
        self.ty = self.targets // self.width
        self.tx = self.targets % self.width
        self.sources = torch.nonzero(self.valid.flatten()).flatten()
        dy, dx = torch.meshgrid(
            torch.arange(patch, device=self.device),
            torch.arange(patch, device=self.device),
            indexing="ij",
        )
        self.offsets = (dy * self.padded_width + dx).flatten()
        self.basis: torch.Tensor | None = None
        known = F.pad((~hole)[None, None].float(), (r, r, r, r), value=0.0)
        self.anchored = F.avg_pool2d(known, patch, stride=1)[0, 0].flatten()[self.targets]
        self.update(x)
        if self.usable:
            self._project(patch)

    def update(self, x: torch.Tensor, grid: torch.Tensor | None = None) -> None:
        """Use ``x`` (with the hole's current estimate) for the next matches; with ``grid``,
        re-measure its matches against it."""
        self.x = x
        r = self.radius
        self.flat = F.pad(x[None], (r, r, r, r), mode="replicate")[0].reshape(3, -1)
        self.target_patches = self._patches(self.ty, self.tx)
        if self.basis is not None:
            self.target_codes = self._codes(self.target_patches)
        if grid is not None:
            sy, sx = grid[0].view(-1)[self.targets], grid[1].view(-1)[self.targets]
            self.cost = self._distance(sy, sx, torch.arange(len(self.targets), device=self.device))

    def _patches(self, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
        """(3, N, patch²) values of the patches whose top-left padded pixel is (ys, xs)."""
        start = ys * self.padded_width + xs
        return self.flat[:, start[:, None] + self.offsets[None, :]]

    def _codes(self, patches: torch.Tensor) -> torch.Tensor:
        """(N, D) principal-component codes of (3, N, patch²) patches."""
        rows: torch.Tensor = patches.permute(1, 0, 2).reshape(patches.shape[1], -1)
        if self.basis is None:  # pragma: no cover - only called once the basis exists
            raise ValueError("PatchMatcher: no PCA basis yet.")
        return rows @ self.basis

    def _project(self, patch: int) -> None:
        """Match on the leading principal components of the known patches (PCA-accelerated
        PatchMatch): the source codes are computed once per level with one convolution."""
        sample = min(len(self.sources), _PCA_SAMPLE)
        sy, sx = self._random_sources(sample)
        rows = self._patches(sy, sx).permute(1, 0, 2).reshape(sample, -1)
        rows = rows - rows.mean(dim=0, keepdim=True)
        _, vectors = torch.linalg.eigh(rows.T @ rows)
        self.basis = vectors[:, -_PCA_DIMS:].contiguous()
        r = self.radius
        weight = self.basis.T.reshape(-1, 3, patch, patch)
        padded = F.pad(self.x[None], (r, r, r, r), mode="replicate")
        codes = F.conv2d(padded, weight)[0]
        self.source_codes = codes.reshape(codes.shape[0], -1).T.contiguous()
        self.target_codes = self._codes(self.target_patches)

    def _distance(self, sy: torch.Tensor, sx: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        if self.basis is None:
            diff = self._patches(sy, sx) - self.target_patches[:, idx]
            return (diff * diff).sum(dim=(0, 2))
        codes = self.source_codes[sy * self.width + sx] - self.target_codes[idx]
        return (codes * codes).sum(dim=1)

    def _random_sources(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        pick = torch.randint(len(self.sources), (count,), generator=self.generator)
        flat = self.sources[pick.to(self.device)]
        return flat // self.width, flat % self.width

    def initial(self, nnf: torch.Tensor | None) -> torch.Tensor:
        """A (2, N) field of source coordinates per target: from the coarser level where its
        entries are valid sources, random elsewhere; distances are cached."""
        if nnf is None:
            sy, sx = self._random_sources(len(self.targets))
        else:
            sy, sx = nnf[0][self.ty, self.tx], nnf[1][self.ty, self.tx]
            bad = ~self.valid[sy, sx]
            if bool(bad.any()):
                ry, rx = self._random_sources(int(bad.sum()))
                sy, sx = sy.clone(), sx.clone()
                sy[bad], sx[bad] = ry, rx
        field = torch.stack([sy, sx])
        self.cost = self._distance(sy, sx, torch.arange(len(self.targets), device=self.device))
        return self._grid(field)

    def _grid(self, field: torch.Tensor) -> torch.Tensor:
        """Scatter a (2, N) target field into a (2, H, W) grid (non-targets point at
        themselves, which is never a valid source for a target)."""
        ys = torch.arange(self.height, device=self.device)[:, None].expand(self.height, self.width)
        xs = torch.arange(self.width, device=self.device)[None, :].expand(self.height, self.width)
        grid = torch.stack([ys, xs]).clone()
        grid[0].view(-1)[self.targets] = field[0]
        grid[1].view(-1)[self.targets] = field[1]
        return grid

    def _try(self, grid: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor) -> None:
        """Adopt candidate sources (one per target) that are valid and closer."""
        inside = (cy >= 0) & (cy < self.height) & (cx >= 0) & (cx < self.width)
        cy, cx = cy.clamp(0, self.height - 1), cx.clamp(0, self.width - 1)
        ok = inside & self.valid.view(-1)[cy * self.width + cx]
        idx = torch.nonzero(ok).flatten()
        if len(idx) == 0:
            return
        cost = self._distance(cy[idx], cx[idx], idx)
        better = cost < self.cost[idx]
        idx, cost = idx[better], cost[better]
        self.cost[idx] = cost
        flat = self.targets[idx]
        grid[0].view(-1)[flat] = cy[idx]
        grid[1].view(-1)[flat] = cx[idx]

    def sweep(self, grid: torch.Tensor) -> torch.Tensor:
        """One PatchMatch iteration: jump-flood propagation (steps 4, 2, 1 in the four
        directions), then random search in shrinking windows."""
        for step in (4, 2, 1):
            for dy, dx in ((0, step), (0, -step), (step, 0), (-step, 0)):
                ny = (self.ty + dy).clamp(0, self.height - 1)
                nx = (self.tx + dx).clamp(0, self.width - 1)
                self._try(grid, grid[0][ny, nx] - dy, grid[1][ny, nx] - dx)
        count = len(self.targets)
        window = max(self.height, self.width)
        while window >= 1:
            jitter = torch.randint(-window, window + 1, (2, count), generator=self.generator)
            jitter = jitter.to(self.device)
            sy, sx = grid[0].view(-1)[self.targets], grid[1].view(-1)[self.targets]
            self._try(grid, sy + jitter[0], sx + jitter[1])
            window //= 4
        return grid

    def vote(self, grid: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        """Each hole pixel becomes the similarity-weighted mean of what the matched source
        patches covering it say it is. With ``source`` (3HW), the values are read from it
        instead of the image and only the hole's votes are returned (0 elsewhere)."""
        sy, sx = grid[0].view(-1)[self.targets], grid[1].view(-1)[self.targets]
        if source is None:
            values = self._patches(sy, sx)
        else:
            r = self.radius
            flat = F.pad(source[None], (r, r, r, r), mode="replicate")[0].reshape(3, -1)
            start = sy * self.padded_width + sx
            values = flat[:, start[:, None] + self.offsets[None, :]]
        area = values.shape[0] * values.shape[2]
        cost = self.cost / area
        scale = (
            torch.quantile(cost, 0.75).clamp_min(1e-6) if len(cost) > 1 else cost.clamp_min(1e-6)
        )
        weight = torch.exp(-cost / (2.0 * scale)) * (self.anchored + _ANCHOR_FLOOR)
        destination = (self.ty * self.padded_width + self.tx)[:, None] + self.offsets[None, :]
        size = self.flat.shape[1]
        total = torch.zeros(3, size, device=self.device)
        norm = torch.zeros(size, device=self.device)
        weighted = values * weight[None, :, None]
        total.index_add_(1, destination.flatten(), weighted.reshape(3, -1))
        norm.index_add_(0, destination.flatten(), weight[:, None].expand_as(destination).flatten())
        r = self.radius
        shape = (self.height + 2 * r, self.padded_width)
        total = total.reshape(3, *shape)[:, r:-r, r:-r]
        norm = norm.reshape(shape)[r:-r, r:-r]
        estimate = total / norm.clamp_min(1e-12)
        fill = self.hole & (norm > 0)
        return torch.where(fill[None], estimate, self.x if source is None else 0.0)
