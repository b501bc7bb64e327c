"""Training throughput: images/s end to end (disk -> decode -> augment -> forward/backward/step) versus the
same model's forward+backward+step on a batch already in memory. Target ratio >= 0.8 (the loader never
starves the model).

    python benchmarks/throughput.py --config configs/mobilenet_v2_cpu.yaml --steps 60
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from common import write_result
from torch.utils.data import DataLoader

from deeppose.config import load_config
from deeppose.data.torch_dataset import CropDataset
from deeppose.heads.base import head_output
from deeppose.heads.losses import masked_mean
from deeppose.train.builders import build_datasets, build_model, make_objective, make_optimizer
from deeppose.train.run import EpochSampler


def step(model, opt, objective, batch, channels_last: bool) -> None:  # noqa: ANN001
    images = batch["image"]
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    loss = masked_mean(objective(head_output(model, images), batch["joints"]), batch["labelled"])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--name", default="train_throughput")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    cfg = load_config(args.config, args.overrides)
    train, _ = build_datasets(cfg.data, cfg.seed)
    crops = CropDataset(train, cfg.data.input_size, cfg.data.augment, seed=cfg.seed)
    model = build_model(cfg, train.skeleton.num_joints).train()
    opt, _ = make_optimizer(model, cfg.optim, 10_000)
    loss_fn = make_objective(cfg, cfg.model, cfg.loss, cfg.heatmap, "loss")
    bs = cfg.optim.batch_size
    n = (args.steps + args.warmup) * bs
    loader = DataLoader(crops, batch_size=bs, sampler=EpochSampler(len(crops), 0, 0), drop_last=True,
                        num_workers=cfg.data.num_workers)
    it = iter(loader)
    for _ in range(args.warmup):
        step(model, opt, loss_fn, next(it), cfg.model.channels_last)
    start = time.perf_counter()
    for _ in range(args.steps):
        step(model, opt, loss_fn, next(it), cfg.model.channels_last)
    end_to_end = args.steps * bs / (time.perf_counter() - start)
    del it
    fixed = next(iter(DataLoader(crops, batch_size=bs, num_workers=0)))
    for _ in range(args.warmup):
        step(model, opt, loss_fn, fixed, cfg.model.channels_last)
    start = time.perf_counter()
    for _ in range(args.steps):
        step(model, opt, loss_fn, fixed, cfg.model.channels_last)
    in_memory = args.steps * bs / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(min(n, len(crops), 400)):
        crops[i]
    loader_only = min(n, len(crops), 400) / (time.perf_counter() - start)
    data = {"arch": cfg.model.arch, "input_size": cfg.data.input_size, "batch_size": bs,
            "num_workers": cfg.data.num_workers, "steps": args.steps,
            "end_to_end_images_per_s": round(end_to_end, 2), "in_memory_images_per_s": round(in_memory, 2),
            "ratio": round(end_to_end / in_memory, 3), "loader_single_process_images_per_s": round(loader_only, 1),
            "target_ratio": 0.8}
    path = write_result(args.name, data, " ".join(["python"] + sys.argv))
    print(f"end to end {end_to_end:.1f} img/s, in memory {in_memory:.1f} img/s, ratio {end_to_end / in_memory:.3f} "
          f"(loader alone, one process: {loader_only:.0f} img/s) -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
