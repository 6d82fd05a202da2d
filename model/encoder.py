"""The space-time-precision (STP) encoder.

Per-source input encoders bring every source's frames to the precision width
at L/2; frames of all sources are then processed together by a stack of STP
blocks with three parallel paths that exchange features through a learnable
Laplacian pyramid every block:
  precision  3x3 convs per frame at L/2        (N, P, L/2, L/2), N = B*T
  time       time-axial attention at L/8       (N, Tw, L/8, L/8), attention over T
  space      2D-ALiBi attention per frame, L/16 (N, S, L/16, L/16)
`ModelConfig.time_factor` 2 moves the time path to L/4 (cells of 4 x 4 px instead of 8 x 8);
the space path stays at L/16 either way (see ModelConfig).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from model.alibi import alibi_bias
from model.batch import VideoBatch
from model.config import ModelConfig
from model.layers import ConvLayer, TransformerLayer
from model.pyramid import LaplacianPyramid, Resample
from model.timecode import timecode

PATCH = 2  # input pixels per precision cell
SPACE_CELL = 16  # input pixels per space-path cell, whatever the time path's factor
# inference works through the precision path in groups of frames this large, so that a group's
# intermediates stay in the L3 cache (32 MiB on the 2-core test machine, shared with the rest of
# the forward and with other processes): at 2 threads, B = 2, L = 128 (48 frames of 0.5 MiB)
# 4-12 MiB groups ran 0.39-0.41 s, 16 MiB 0.43 s, one 32 MiB group 0.45 s and up to 0.6 s when
# the machine's memory was busy (session 3, alternated in one process)
CHUNK_BYTES = 8 << 20


@dataclass
class Encoded:
    """Encoder output: per-frame precision features and what the summary needs.

    features: (B, T, L/2, L/2, P); times: (B, T) days; key_ok: (B, T, L/2, L/2) bool,
    the frame saw a valid pixel in that cell (masked frames are never attended to).
    """

    features: torch.Tensor
    times: torch.Tensor
    key_ok: torch.Tensor


def _factors(cfg: ModelConfig) -> tuple[int, int]:
    """The pyramid's factors: precision (L/2) -> time path -> space path (L/16)."""
    return cfg.time_factor, SPACE_CELL // (PATCH * cfg.time_factor)


def _pool_any(mask: torch.Tensor, factor: int) -> torch.Tensor:
    """(B, T, H, W) bool -> (B, T, H/f, W/f) bool: any True inside each f x f cell."""
    return F.max_pool2d(mask.float(), factor).bool()


def _frames_per_group(x: torch.Tensor) -> int:
    """Frames of x (N, ...) per group of about CHUNK_BYTES."""
    return max(1, CHUNK_BYTES // (x[0].numel() * x.element_size()))


def _nchw(x: torch.Tensor) -> torch.Tensor:
    """(N, H, W, C) -> (N, C, H, W) view (channels_last memory, what the convolutions want)."""
    return x.permute(0, 3, 1, 2)


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) channels_last -> (N, H, W, C) view."""
    return x.permute(0, 2, 3, 1)


class STPBlock(nn.Module):
    """One space-time-precision block. Precision features are (N, P, h2, w2) in channels_last
    memory; time and space features are channels-last tensors (N, h8, w8, Tw), (N, h16, w16, S)
    (h8 = h2 / time_factor: L/8 by default, L/4 with time_factor 2)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        p, t, s = cfg.precision_width, cfg.time_width, cfg.space_width
        self.precision = ConvLayer(p)
        self.time = TransformerLayer(t, cfg.time_heads, cfg.mlp_ratio)
        self.time_cond = nn.Linear(cfg.timecode_dim, t)
        self.space = TransformerLayer(s, cfg.space_heads, cfg.mlp_ratio)
        self.pyramid = LaplacianPyramid(p, _factors(cfg))
        self.p_to_t, self.p_to_s = nn.Linear(p, t), nn.Linear(p, s)
        self.t_to_p, self.s_to_p = nn.Linear(t, p), nn.Linear(s, p)

    def forward(self, xp: torch.Tensor, xt: torch.Tensor, xs: torch.Tensor, b: int,
                tc: torch.Tensor, time_mask: torch.Tensor, space_mask: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """xp (N,P,h2,w2), xt (N,h8,w8,Tw), xs (N,h16,w16,S); tc (B,T,tc_dim); N = b*T."""
        _, h8, w8, _ = xt.shape
        _, h16, w16, _ = xs.shape
        # the three paths, in parallel; the precision path with the pyramid's levels of its output
        xp, (g8, g16) = self._precision(xp)
        # time: one sequence of T frames per L/8 cell, all cells and samples batched
        seq = rearrange(xt, "(b t) h w c -> b (h w) t c", b=b)
        cond = self.time_cond(tc)[:, None]  # (B, 1, T, Tw): the same timecode at every cell
        xt = rearrange(self.time(seq, time_mask, cond), "b (h w) t c -> (b t) h w c", h=h8, w=w8)
        # space: one sequence of L/16 patches per frame
        xs = self.space(rearrange(xs, "n h w c -> n (h w) c"), space_mask).view(-1, h16, w16, xs.shape[-1])
        # exchange: coarse paths read the pyramid's low-pass levels of the precision path;
        # the precision path gets the time / space messages as its L/8 and L/16 bands,
        # brought back to L/2 by the learned upsamplers (identity when messages are 0)
        xt = xt + self.p_to_t(_nhwc(g8))
        xs = xs + self.p_to_s(_nhwc(g16))
        messages = [_nchw(self.t_to_p(xt)), _nchw(self.s_to_p(xs))]
        if torch.is_grad_enabled():
            return self.pyramid.reconstruct_with(xp, [g8, g16], messages), xt, xs
        # inference: the same sum, added into xp in place, a cache-sized group of frames at a time
        coarse, up = self.pyramid.coarse_with([g8, g16], messages), self.pyramid.up[0]
        k = _frames_per_group(xp)
        for part, c, g in zip(xp.split(k), coarse.split(k), g8.split(k)):
            up.add_learned_minus_fixed_(part, c, g)
        return xp, xt, xs

    def _precision(self, xp: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Precision conv layer and the pyramid levels of its output: xp (N, P, h2, w2) ->
        (xp, [g8, g16]). Without autograd xp is updated in place, a group of frames at a time,
        so the layer's intermediates stay in cache (the layer and the first downsampling
        are per frame); the caller must not need the old xp."""
        if torch.is_grad_enabled():
            xp = self.precision(xp)
            return xp, self.pyramid.levels(xp)
        down = self.pyramid.down
        coarse = []
        for part in xp.split(_frames_per_group(xp)):
            part.add_(self.precision.branch(part))
            coarse.append(down[0](part))
        levels = [torch.cat(coarse)]
        for d in down[1:]:
            levels.append(d(levels[-1]))
        return xp, levels


class STPEncoder(nn.Module):
    """VideoBatch -> Encoded (per-frame features at L/2 for the summary head)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        p, t, s = cfg.precision_width, cfg.time_width, cfg.space_width
        # per-source input encoders: (C_m + valid flag) x 2 x 2 patch -> P
        self.inputs = nn.ModuleDict(
            {src.name: nn.Conv2d(src.channels + 1, p, PATCH, stride=PATCH) for src in cfg.sources})
        self.source_embed = nn.ParameterDict(
            {src.name: nn.Parameter(torch.randn(p) * 0.02) for src in cfg.sources})
        self.input_time = nn.Linear(cfg.timecode_dim, p)
        time_f, space_f = _factors(cfg)
        self.stem_down8, self.stem_down16 = Resample(p, time_f, "down"), Resample(p, space_f, "down")
        self.stem_t, self.stem_s = nn.Linear(p, t), nn.Linear(p, s)
        if cfg.position == "learned":  # baseline only: learned absolute positions at L/16
            self.pos_embed = nn.Parameter(torch.randn(1, s, cfg.position_grid, cfg.position_grid) * 0.02)
        self.blocks = nn.ModuleList(STPBlock(cfg) for _ in range(cfg.depth))

    def _embed_inputs(self, video: VideoBatch
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> x (B, T, h2, w2, P) contiguous, source embeddings (B, T, P), times (B, T), frame_ok (B, T),
        valid (B, T, L, L); frames of all sources concatenated along T."""
        feats, embeds, times, oks, valids = [], [], [], [], []
        for name, frames in video.sources.items():
            if name not in self.inputs:
                raise ValueError(f"unknown source {name!r}; the model knows {self.cfg.source_names}")
            b, t, c, hh, ww = frames.values.shape
            if c != self.cfg.source(name).channels:
                raise ValueError(f"source {name!r} has {c} channels, the model expects "
                                 f"{self.cfg.source(name).channels}")
            if t == 0:
                continue
            ok = frames.frame_ok
            valid = frames.valid & ok[..., None, None]
            # invalid pixels carry zeros + a flag, so their (garbage) values never enter; written
            # straight into channels_last memory, so the convolutions' outputs are channels_last too
            x = torch.empty(b * t, c + 1, hh, ww, dtype=frames.values.dtype, device=frames.values.device,
                            memory_format=torch.channels_last)
            x5 = x.unflatten(0, (b, t))  # a view: (B, T, C+1, L, L)
            torch.where(valid[:, :, None], frames.values, frames.values.new_zeros(()), out=x5[:, :, :c])
            x5[:, :, c] = valid
            x = self.inputs[name](x)  # (B*T, P, h2, w2) channels_last
            feats.append(rearrange(_nhwc(x), "(b t) h w c -> b t h w c", b=b))
            embeds.append(self.source_embed[name].expand(b, t, -1))
            times.append(frames.times)
            oks.append(ok)
            valids.append(valid)
        if not feats:  # sources present but all with zero frames: one absent dummy frame
            frames = next(iter(video.sources.values()))
            b, _, _, hh, ww = frames.values.shape
            p, dev = self.cfg.precision_width, frames.values.device
            return (torch.zeros(b, 1, hh // PATCH, ww // PATCH, p, device=dev),
                    torch.zeros(b, 1, p, device=dev), video.period[:, :1],
                    torch.zeros(b, 1, dtype=torch.bool, device=dev),
                    torch.zeros(b, 1, hh, ww, dtype=torch.bool, device=dev))
        x = feats[0] if len(feats) == 1 else torch.cat(feats, 1)
        return (x, torch.cat(embeds, 1), torch.cat(times, 1), torch.cat(oks, 1),
                torch.cat(valids, 1))

    def forward(self, video: VideoBatch) -> Encoded:
        b = video.batch_size
        if not video.sources:
            raise ValueError("the video has no source at all; give at least one (it may be all masked)")
        x, embed, times, _, valid = self._embed_inputs(video)  # valid already excludes bad frames
        _, n_t, h2, w2, _ = x.shape
        if h2 % 8 or w2 % 8:
            raise ValueError(f"tile size must be a multiple of 16 pixels, got {2 * h2} x {2 * w2}")
        tc = timecode(times, self.cfg.timecode_dim).to(x.dtype)  # (B, T, tc)
        # add the source and time embeddings in place (x is this function's own tensor)
        x.add_((embed + self.input_time(tc)).to(x.dtype)[:, :, None, None])
        xp = _nchw(rearrange(x, "b t h w c -> (b t) h w c"))  # (N, P, h2, w2) channels_last view
        g8 = self.stem_down8(xp)
        g16 = self.stem_down16(g8)
        xt, xs = self.stem_t(_nhwc(g8)), self.stem_s(_nhwc(g16))
        h16, w16 = xs.shape[1:3]
        space_mask = None
        if self.cfg.position == "learned":
            pos = F.interpolate(self.pos_embed, size=(h16, w16), mode="bicubic", align_corners=False)
            xs = xs + _nhwc(pos)
        else:
            space_mask = alibi_bias(h16, w16, self.cfg.space_heads, xs.device)[None]
        # time attention: a frame is a key at a time-path cell if it saw a valid pixel there;
        # every query may see itself so that no row is empty (no NaN)
        key8 = rearrange(_pool_any(valid, PATCH * self.cfg.time_factor), "b t h w -> b (h w) 1 1 t")
        eye = torch.eye(n_t, dtype=torch.bool, device=x.device)
        # as an additive bias, built once: the attention kernel would convert a bool mask every block
        time_mask = torch.where(key8 | eye, 0.0, float("-inf")).to(xt.dtype)  # (B, h8*w8, 1, T, T)
        for block in self.blocks:
            xp, xt, xs = block(xp, xt, xs, b, tc, time_mask, space_mask)
        features = rearrange(xp, "(b t) c h w -> b t h w c", b=b)  # a view: xp is channels_last
        return Encoded(features, times, _pool_any(valid, PATCH))
