"""Run under torchrun by test_train_ddp.py: one training step, then each rank saves its weights."""

import sys
from pathlib import Path

import torch

from aefcli.train import TrainConfig
from aefcli.train_loop import Trainer
from aefcli.train_support import init_dist


def main(cube: str, out: str) -> None:
    cfg = TrainConfig(cubes=(cube,), out=Path(out), preset="tiny", steps=1, batch_size=2, window=16, max_frames=4,
                      workers=0, device="cpu")
    device = torch.device("cpu")
    dist = init_dist(device)
    torch.manual_seed(cfg.seed)
    trainer = Trainer(cfg, device, dist)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit()
    trainer.close()
    period = trainer.loader.dataset.sampler.batch(0).teacher.period
    torch.save({"before": before, "after": trainer.model.state_dict(), "period": period},
               Path(out) / f"rank{dist.rank}.pt")
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:3])
