"""Training past one process: torchrun + DistributedDataParallel (gloo) on synthetic data, two processes at batch b
stepping like one at 2b, kill -9 at a random step then --resume to the very weights of an uninterrupted run (one
process and two), a torn checkpoint write, and the device/precision settings on the CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from deeppose.cli import main
from deeppose.config import load_config
from deeppose.models.checkpoint import load_checkpoint, model_from_checkpoint
from deeppose.train import distributed
from deeppose.train.distributed import World
from deeppose.train.loop import fit
from deeppose.train.run import EpochSampler

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
DEEPPOSE = ["-m", "deeppose"]


@pytest.fixture(scope="module")
def config(synthetic_root, tmp_path_factory) -> Path:
    """A tiny run: the small network on 32 synthetic training images at 32 px, batch 4, 4 epochs."""
    root = tmp_path_factory.mktemp("ddp")
    (root / "synthetic").symlink_to(synthetic_root, target_is_directory=True)
    path = root / "tiny.json"
    path.write_text(json.dumps({"data": {"root": str(root), "train": ["synthetic:train"], "val_size": 16,
                                         "input_size": 32, "num_workers": 0},
                                "model": {"arch": "small"}, "optim": {"batch_size": 4, "warmup_steps": 2},
                                "epochs": 4, "checkpoint_minutes": 0}))
    return path


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def _identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_sampler_deals_each_epoch_out_like_distributed_sampler():
    one = EpochSampler(10, seed=3, epoch=2).order
    shards = [EpochSampler(10, 3, 2, rank=r, size=3).order for r in range(3)]
    assert all(len(s) == 3 for s in shards)  # 10 cut to 9, 3 each
    assert sorted(np.concatenate(shards).tolist()) == sorted(one[:9].tolist())
    assert shards[1].tolist() == one[1:9:3].tolist()
    assert EpochSampler(10, 3, 2, start=1, rank=1, size=3).order.tolist() == shards[1][1:].tolist()


def test_lr_scaling_device_and_precision_rules():
    two = World(rank=1, size=2)
    assert distributed.scaled_lr(1e-3, two, "linear") == 2e-3
    assert distributed.scaled_lr(1e-3, two, "sqrt") == pytest.approx(1e-3 * 2 ** 0.5)
    assert distributed.scaled_lr(1e-3, two, "none") == 1e-3
    cpu = torch.device("cpu")
    assert distributed.resolve_precision("auto", cpu) is None  # CPU runs stay fp32, bit-reproducible
    assert distributed.resolve_precision("bf16", cpu) == torch.bfloat16
    if not torch.cuda.is_available():
        assert distributed.resolve_device("auto", two) == cpu
        with pytest.raises(ValueError, match="no CUDA device"):
            distributed.resolve_device("cuda", two)
    with pytest.raises(ValueError, match="precision"):
        distributed.resolve_precision("fp8", cpu)
    assert distributed.consensus(World(), 0.5, [True, False]) == (0.5, [True, False])


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_on_the_cpu(config, tmp_path, precision):
    cfg = load_config(config, [f"precision={precision}", "epochs=1", "checkpoint_minutes=10"])
    result = fit(cfg, tmp_path / precision, progress=False)
    assert result.steps == 8 and np.isfinite(result.best_val_pck)
    ckpt = load_checkpoint(result.last)
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert ("scaler" in ckpt) == (precision == "fp16")  # a gradient scaler for fp16 only, and it is resumable


def test_two_processes_train_and_rank_0_writes_a_loadable_checkpoint(config, tmp_path):
    out = tmp_path / "ddp"
    done = subprocess.run([*TORCHRUN, *DEEPPOSE, "train", "--config", str(config), "--out", str(out)],
                          capture_output=True, text=True, env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("training stage1") == 1  # only rank 0 logs
    assert "2 process(es) x batch 4 = effective batch 8, lr 0.001 -> 0.002 (linear)" in done.stdout
    saved = json.loads((out / "config.json").read_text())
    assert saved["world_size"] == 2 and saved["effective_batch"] == 8 and saved["lr_effective"] == 0.002
    model, meta = model_from_checkpoint(out / "best.pt")
    assert meta.provenance["world_size"] == 2 and meta.provenance["step"] == 4 * 4  # 32 images / 2 / 4 a step
    assert model(torch.zeros(1, 3, 32, 32, dtype=torch.uint8)).shape == (1, 14, 2)
    # a run of 2 processes resumes on 2, not on 1: its data order depends on them
    assert main(["train", "--config", str(config), "--out", str(out), "--resume"]) == 2
    # bad input under torchrun: each process says it in one line and the launch fails, without hanging
    again = subprocess.run([*TORCHRUN, *DEEPPOSE, "train", "--config", str(config), "--out", str(out)],
                           capture_output=True, text=True, env=_env(), timeout=120)
    assert again.returncode != 0 and "run folder is not empty; pass --resume" in again.stderr


STEP_SCRIPT = '''
import sys, torch
from torch import nn
from deeppose.config import load_config
from deeppose.data.torch_dataset import CropDataset
from deeppose.train import distributed
from deeppose.train.builders import build_datasets
from deeppose.train.loop import run_task
from deeppose.train.run import Schedule, StageTask
from deeppose.train.stage1 import stage1_meta

w = distributed.join()
cfg = load_config(sys.argv[1], sys.argv[3:])
torch.manual_seed(cfg.seed)
train, val = build_datasets(cfg.data, cfg.seed)
model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 64), nn.Tanh(), nn.Linear(64, 28))  # no BN, no dropout
loss = lambda item: ((model(item["image"].float() / 255).view(-1, 14, 2) - item["joints"]) ** 2).mean()
task = StageTask(model, CropDataset(train, 32, cfg.data.augment, seed=cfg.seed), loss, lambda: {"val_pck": 0.0},
                 stage1_meta(cfg, 14, "lsp14"))
run_task(task, Schedule.of(cfg), sys.argv[2] + f"/run", stop_after_steps=1, progress=False)
torch.save({n: p.grad for n, p in model.named_parameters()}, sys.argv[2] + f"/grads{w.rank}.pt")
distributed.leave()
'''


def test_two_processes_at_batch_b_take_the_step_of_one_at_2b(config, tmp_path):
    script = tmp_path / "one_step.py"
    script.write_text(STEP_SCRIPT)
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    for command, out, batch in (([sys.executable], "one", 8), (TORCHRUN, "two", 4)):
        done = subprocess.run([*command, str(script), str(config), str(tmp_path / out), f"optim.batch_size={batch}"],
                              capture_output=True, text=True, env=_env(), timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    one = torch.load(tmp_path / "one" / "grads0.pt", weights_only=True)
    rank0, rank1 = (torch.load(tmp_path / "two" / f"grads{r}.pt", weights_only=True) for r in (0, 1))
    assert _identical(rank0, rank1)  # DDP averaged the two processes' gradients
    for name, g in one.items():
        assert torch.allclose(rank0[name], g, rtol=1e-5, atol=1e-8), name
    assert any(g.abs().max() > 0 for g in one.values())


def _kill_at_a_random_step(command: list[str], out: Path, total: int, rng: np.random.Generator) -> int:
    """Start `command`, kill -9 its whole process group once last.pt shows a random step; that step."""
    at = int(rng.integers(3, total - 4))
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(),
                               start_new_session=True)
    deadline = time.monotonic() + 240
    step = -1
    while step < at and process.poll() is None and time.monotonic() < deadline:
        try:
            step = torch.load(out / "last.pt", map_location="cpu", weights_only=True)["meta"]["provenance"]["step"]
        except (OSError, RuntimeError, EOFError, KeyError):
            pass
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)
    return step


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_kill_9_at_a_random_step_then_resume_gives_the_same_weights(config, tmp_path, processes):
    launch = [sys.executable, *DEEPPOSE] if processes == 1 else [*TORCHRUN, *DEEPPOSE]
    total = 4 * (32 // processes // 4)  # 4 epochs of 32 images, batch 4 per process

    def train(out: Path, *extra: str) -> list[str]:
        return [*launch, "train", "--config", str(config), "--out", str(out), *extra]

    full = subprocess.run(train(tmp_path / "full"), capture_output=True, text=True, env=_env(), timeout=300)
    assert full.returncode == 0, full.stderr[-3000:]
    rng = np.random.default_rng(processes)
    for _ in range(3):  # a run that finished before the kill did not test anything: kill another
        cut = tmp_path / f"cut{_}"
        step = _kill_at_a_random_step(train(cut), cut, total, rng)
        last = load_checkpoint(cut / "last.pt")["meta"].provenance["step"]
        if last < total:
            break
    assert 0 < last < total, (step, last)
    resumed = subprocess.run(train(cut, "--resume"), capture_output=True, text=True, env=_env(), timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _identical(_weights(cut / "last.pt"), _weights(tmp_path / "full" / "last.pt"))
    assert _identical(_weights(cut / "best.pt"), _weights(tmp_path / "full" / "best.pt"))


TORN_SCRIPT = '''
import os, sys, torch
real = torch.save
calls = [0]

def torn(obj, f):
    calls[0] += 1
    real(obj, f)
    if calls[0] == int(os.environ["TEAR_AT"]):  # half the file on disk, then the process dies (kill -9)
        data = open(f, "rb").read()
        open(f, "wb").write(data[: len(data) // 2])
        os._exit(9)

torch.save = torn
from deeppose.cli import main
sys.exit(main(sys.argv[1:]))
'''


@pytest.mark.slow
def test_a_torn_checkpoint_write_leaves_the_previous_one_usable(config, tmp_path):
    script = tmp_path / "torn.py"
    script.write_text(TORN_SCRIPT)
    train = [*DEEPPOSE, "train", "--config", str(config), "--out"]
    full, cut = tmp_path / "full", tmp_path / "cut"

    def run(*args: str, **env: str) -> subprocess.CompletedProcess:  # one thread each: the same arithmetic
        return subprocess.run([sys.executable, *args], capture_output=True, text=True, env={**_env(), **env},
                              timeout=300)

    assert run(*train, str(full)).returncode == 0
    died = run(str(script), *train[2:], str(cut), TEAR_AT="5")
    assert died.returncode == 9, died.stderr[-2000:]
    assert (cut / ".last.tmp.pt").is_file()  # the torn file
    before = load_checkpoint(cut / "last.pt")  # whole and verified: the 4th write
    assert before["meta"].provenance["step"] == 4
    resumed = run(*train, str(cut), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _identical(_weights(cut / "last.pt"), _weights(full / "last.pt"))
    assert not (cut / ".last.tmp.pt").exists()


@pytest.mark.slow
def test_two_processes_train_a_cascade_stage_by_stage(config, tmp_path):
    out = tmp_path / "cascade"
    overrides = ["epochs=1", "optim.batch_size=8", "cascade.stages=2", "cascade.sigma=1.0", "cascade.crop_size=16",
                 "cascade.source_size=64", "cascade.draws=1", "cascade.optim.batch_size=8", "cascade.epochs=1",
                 "cascade.optim.warmup_steps=1"]
    done = subprocess.run([*TORCHRUN, *DEEPPOSE, "train", "--config", str(config), *overrides, "--out", str(out)],
                          capture_output=True, text=True, env=_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    model, meta = model_from_checkpoint(out / "cascade.pt")
    assert meta.kind == "cascade" and meta.stages == 2
    assert json.loads((out / "stage2" / "config.json").read_text())["world_size"] == 2
    assert json.loads((out / "stats_s2.json").read_text())["n_images"] == 32  # fitted once, by rank 0


@pytest.mark.slow
def test_a_command_that_does_not_train_runs_on_rank_0_alone(tmp_path, shared_data):
    out = tmp_path / "demo"
    done = subprocess.run([*TORCHRUN, *DEEPPOSE, "demo", "--out", str(out)], capture_output=True, text=True,
                          env=_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("contact sheet:") == 1 and (out / "sheet.png").is_file()


@pytest.mark.slow
def test_two_nodes_meet_through_torchruns_rendezvous(config, tmp_path):
    """Multi-node as torchrun does it (c10d rendezvous at an endpoint), two 'machines' of one process each, here on
    one machine."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "nodes"
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank",
                               str(rank), "--nproc_per_node", "1", "--rdzv_backend", "c10d", "--rdzv_endpoint",
                               f"127.0.0.1:{port}", "--rdzv_id", "deeppose-test", *DEEPPOSE, "train", "--config",
                               str(config), "epochs=1", "--out", str(out)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
             for rank in (0, 1)]
    outputs = [node.communicate(timeout=300) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], [o[1][-2000:] for o in outputs]
    assert json.loads((out / "config.json").read_text())["world_size"] == 2
    assert load_checkpoint(out / "best.pt")["meta"].provenance["step"] == 32 // 2 // 4


def test_a_run_started_before_these_settings_existed_resumes(config, tmp_path):
    """A last.pt whose config lacks device, precision and optim.lr_scaling (an older version's) resumes, and the
    device may change on resume."""
    from deeppose.models.checkpoint import save_checkpoint

    cfg = load_config(config, ["epochs=1", "checkpoint_minutes=10"])
    out = tmp_path / "old"
    fit(cfg, out, stop_after_steps=2, progress=False)
    ckpt = load_checkpoint(out / "last.pt")
    old = dict(ckpt["meta"].provenance["config"])
    del old["device"], old["precision"], old["optim"]["lr_scaling"]
    meta = ckpt["meta"].with_provenance(config=old)
    model, _ = model_from_checkpoint(out / "last.pt")
    save_checkpoint(out / "last.pt", model, meta, **{k: ckpt[k] for k in ("optimizer", "scheduler", "rng_torch")})
    assert fit(load_config(config, ["epochs=1", "device=cpu"]), out, resume=True, progress=False).steps == 8


@pytest.mark.slow
def test_two_processes_run_the_training_demo(tmp_path):
    out = tmp_path / "demo-train"
    done = subprocess.run([*TORCHRUN, *DEEPPOSE, "demo", "--train", "--epochs", "1", "--out", str(out)],
                          capture_output=True, text=True, env=_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "run" / "config.json").read_text())["world_size"] == 2
    assert json.loads((out / "metrics.json").read_text())["n_images"] == 200  # evaluated once, by rank 0
    assert done.stdout.count("PCK@0.2: mean pose") == 1
