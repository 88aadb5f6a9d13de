"""The U-Net (and U-Net++, DeepLabV3+) on CUDA (skipped without a GPU;
``experiments/gpu_check.sh`` runs these)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gitract.data.record import SliceStack  # noqa: E402
from gitract.models.unet import UNetConfig, UNetSegmenter, augment_batch  # noqa: E402

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(),
                                                  reason="needs a CUDA GPU")]

CFG = UNetConfig(image_size=None, crop_size=32, base_channels=8, depth=2, batch_size=4,
                 max_epochs=None, max_steps=20, device="cuda", amp=True, progress=False)


def _stack(case, shape=(50, 62), n=6, seed=0):
    gen = np.random.default_rng(seed)
    h, w = shape
    image = gen.normal(100, 5, (n, h, w)).astype(np.float32)
    masks = np.zeros((n, h, w, 2), bool)
    masks[:, h // 4: h // 2, w // 3: 2 * w // 3, 0] = True
    masks[:, 2 * h // 3:, : w // 4, 1] = True
    image[masks[..., 0]] += 100
    image[masks[..., 1]] += 50
    return SliceStack(image, masks, ("a", "b"), (1.5, 1.5),
                      tuple(f"{case}_day0_slice_{i:04d}" for i in range(n)), case, "day0")


@pytest.mark.parametrize("architecture", ["unet", "unetpp", "deeplabv3plus"])
def test_cuda_amp_channels_last_ema_fit_and_native_predict(architecture):
    seg = UNetSegmenter(CFG, architecture=architecture).fit([_stack("c1")],
                                                            [_stack("c2", seed=1)])
    h = seg.history_
    assert h.device.startswith("cuda") and h.amp and h.ema and h.steps == 20
    stack = _stack("c3", shape=(45, 51), seed=2)
    proba = seg.predict_proba_stack(stack)
    assert proba.shape == (6, 45, 51, 2) and np.isfinite(proba).all()
    # The CPU copy of the same weights predicts the same maps (no AMP there).
    cpu = UNetSegmenter(seg.config, device="cpu", amp=False)
    cpu.net_, cpu.device_, cpu.classes_ = seg.net_.float().cpu(), torch.device("cpu"), seg.classes_
    np.testing.assert_allclose(cpu.predict_proba_stack(stack), proba, atol=2e-2)


def test_augment_is_the_same_on_cuda_and_cpu():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 48, 40, generator=gen)
    y = (x[:, 1:2] > 0.6).float()
    opts = {"rotate": 20.0, "scale": 0.2, "elastic": 0.05, "out_size": (32, 32),
            "crop_foreground": 0.5}
    a = augment_batch(x, y, torch.Generator().manual_seed(1), **opts)
    b = augment_batch(x.cuda(), y.cuda(), torch.Generator().manual_seed(1), **opts)
    torch.testing.assert_close(b[0].cpu(), a[0], atol=1e-4, rtol=0)
    assert (b[1].cpu() != a[1]).float().mean() < 1e-3
