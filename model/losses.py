"""The four AEF objectives (+ CROMA's radar-optical contrastive option)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from model.batch import SourceFrames, TrainBatch
from model.embedding_field import EmbeddingFieldModel

RADAR_OPTICAL_TEMPERATURE = 0.1


@dataclass
class LossTerms:
    """Scalar tensors; `total` = a*reconstruction + b*uniformity + c*consistency + d*text
    (+ radar-optical, + contrast)."""

    total: torch.Tensor
    reconstruction: torch.Tensor
    uniformity: torch.Tensor
    consistency: torch.Tensor
    text: torch.Tensor
    radar_optical: torch.Tensor | None = None
    contrast: torch.Tensor | None = None


def reconstruction_loss(model: EmbeddingFieldModel, z: torch.Tensor,
                        targets: dict[str, SourceFrames]) -> torch.Tensor:
    """Mean over sources (weighted by `SourceSpec.weight`) of the masked per-source loss (L1 or
    L2) of the decoded held-out frames."""
    terms, weights = [], []
    for name, frames in targets.items():
        if frames.values.shape[1] == 0:
            continue
        mask = (frames.valid & frames.present[..., None, None])[:, :, None].expand_as(frames.values)
        if not mask.any():
            continue
        pred = model.decoder(z, name, frames.times)
        err = (pred.float() - frames.values).abs()
        if model.cfg.source(name).loss == "l2":
            err = err**2
        terms.append(err[mask].mean())
        weights.append(model.cfg.source(name).weight)
    if not terms:
        return z.sum() * 0.0  # keeps the graph; no held-out pixel to learn from
    if all(w == 1.0 for w in weights):  # the plain mean, bit for bit as before weights existed
        return torch.stack(terms).mean()
    w = torch.tensor(weights, device=z.device)
    return (torch.stack(terms) * w).sum() / w.sum()


def uniformity_loss(mu: torch.Tensor) -> torch.Tensor:
    """Mean dot product between each embedding and another sample's at the same pixel
    (the batch rolled by one; a single sample is paired with itself shifted by half a tile)."""
    if mu.shape[0] > 1:
        other = mu.roll(1, dims=0)
    else:
        other = mu.roll((mu.shape[1] // 2, mu.shape[2] // 2), dims=(1, 2))
    return (mu * other).sum(-1).mean()


def consistency_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean (1 - cosine) between student and the gradient-stopped teacher embeddings."""
    return (1.0 - (student * teacher.detach()).sum(-1)).mean()


def view_contrast_loss(student: torch.Tensor, teacher: torch.Tensor, tau: float, cell: int, shift: int,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """InfoNCE between the two views' embeddings, (B, L, L, E) each: one random pixel per
    `cell` x `cell` block of every window; its teacher vector must pick out the student's at
    the same place (moved by up to `shift` px) among those of every other sampled pixel of the
    batch. Unlike the consistency term this also pushes other places apart, so the field cannot
    agree with itself by saying the same thing everywhere."""
    b, h, w, _ = teacher.shape
    dev = teacher.device
    gy, gx = torch.meshgrid(torch.arange(0, h, cell, device=dev), torch.arange(0, w, cell, device=dev), indexing="ij")
    n = gy.numel()
    ys = (gy.reshape(1, n) + torch.randint(0, cell, (b, n), device=dev, generator=generator)).clamp(max=h - 1)
    xs = (gx.reshape(1, n) + torch.randint(0, cell, (b, n), device=dev, generator=generator)).clamp(max=w - 1)
    bs = torch.arange(b, device=dev).repeat_interleave(n)
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    if shift:
        ys2 = (ys + torch.randint(-shift, shift + 1, ys.shape, device=dev, generator=generator)).clamp(0, h - 1)
        xs2 = (xs + torch.randint(-shift, shift + 1, xs.shape, device=dev, generator=generator)).clamp(0, w - 1)
    else:
        ys2, xs2 = ys, xs
    return clip_loss(teacher[bs, ys, xs], student[bs, ys2, xs2], torch.tensor(1.0 / tau, device=dev))


def clip_loss(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE between paired rows of a and b, (N, E) each, N >= 2."""
    logits = scale * F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T
    labels = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def training_losses(model: EmbeddingFieldModel, batch: TrainBatch) -> LossTerms:
    """All objectives on one TrainBatch; the text term is 0 (and skipped) without text."""
    cfg = model.cfg
    mu = model(batch.teacher)  # (B, L, L, E)
    zero = mu.new_zeros(())
    recon = reconstruction_loss(model, model.sample(mu), batch.targets) if cfg.a > 0 else zero
    uniform = uniformity_loss(mu) if cfg.b > 0 else zero
    student = model(batch.student) if cfg.c > 0 or cfg.contrast > 0 else None
    consist = consistency_loss(student, mu) if cfg.c > 0 else zero
    text = zero
    video = batch.teacher
    if video.text is not None and cfg.d > 0:
        rows = video.text_mask if video.text_mask is not None else torch.ones(
            video.batch_size, dtype=torch.bool, device=mu.device)
        if int(rows.sum()) >= 2:
            pooled = mu.mean(dim=(1, 2))[rows]
            text = clip_loss(pooled, model.text_proj(video.text[rows].float()), model.logit_scale.exp())
    total = cfg.a * recon + cfg.b * uniform + cfg.c * consist + cfg.d * text
    radar = None
    if cfg.radar_optical_weight > 0:
        radar = radar_optical_loss(model, batch)
        total = total + cfg.radar_optical_weight * radar
    contrast = None
    if cfg.contrast > 0:
        contrast = view_contrast_loss(student, mu, cfg.contrast_tau, cfg.contrast_cell, cfg.contrast_shift)
        total = total + cfg.contrast * contrast
    return LossTerms(total, recon, uniform, consist, text, radar, contrast)


def radar_optical_loss(model: EmbeddingFieldModel, batch: TrainBatch) -> torch.Tensor:
    """CROMA-style contrast between the optical-only and radar-only embeddings of each sample
    (pooled over the tile); 0 when the batch lacks either source or has one sample."""
    optical, radar = model.cfg.radar_optical_pair
    video = batch.teacher
    if optical not in video.sources or radar not in video.sources or video.batch_size < 2:
        return video.period.new_zeros(())
    mu_o = model(video.only((optical,))).mean(dim=(1, 2))
    mu_r = model(video.only((radar,))).mean(dim=(1, 2))
    return clip_loss(mu_o, mu_r, torch.tensor(1.0 / RADAR_OPTICAL_TEMPERATURE, device=mu_o.device))
