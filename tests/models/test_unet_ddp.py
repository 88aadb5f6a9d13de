"""U-Net training under ``torchrun`` with two CPU processes (DistributedDataParallel, gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():  # pragma: no cover
    pytest.skip("this torch build has no torch.distributed", allow_module_level=True)


def test_two_gloo_processes_end_with_the_same_weights(tmp_path):
    from gitract.data.phantom import PhantomConfig, write_phantom
    from gitract.models.unet import UNetSegmenter
    from gitract.models.unet.ddp_train import weights_digest

    data = write_phantom(tmp_path / "phantom", PhantomConfig(
        n_cases=2, n_days=1, n_slices=6, sizes=((64, 72),)))
    out = tmp_path / "model"
    settings = {"image_size": "null", "crop_size": 32, "base_channels": 4, "depth": 2,
                "batch_size": 4, "max_steps": 4, "max_epochs": "null", "max_minutes": 5,
                "device": "cpu", "num_threads": 1, "loader_workers": 0}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "gitract.models.unet.ddp_train", "phantom", str(data), "--train",
           "case1", "--val", "case2", "--out", str(out)]
    for key, value in settings.items():
        cmd += ["--set", f"{key}={value}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    assert sorted(x["rank"] for x in lines) == [0, 1]
    assert all(x["world_size"] == 2 and x["steps"] == 4 for x in lines)
    # Same parameters, buffers (batch-norm statistics) and EMA on both ranks.
    assert lines[0]["weights_sha1"] == lines[1]["weights_sha1"]
    # Rank 0 (alone) wrote the model; it is the weights both ranks hold.
    assert sorted(p.name for p in out.iterdir()) == ["fit.json", "unet.pt"]
    model = UNetSegmenter.load(out, device="cpu")
    assert weights_digest(model.net_) == lines[0]["weights_sha1"]
    assert model.history_.world_size == 2 and model.history_.ema
    assert json.loads((out / "fit.json").read_text())["world_size"] == 2
