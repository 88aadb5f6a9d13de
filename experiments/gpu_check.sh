#!/usr/bin/env bash
# GPU check, at most 10 minutes on one GPU: the tests marked `gpu` (and `requires_cuda`),
# experiments/bench_dense.py on CUDA, a short U-Net training on the quick phantom
# (experiments/bench_unet.py) and nnU-Net 2d on CUDA through gitract compare
# (experiments/configs/tiny_nnunet.yaml, needs the nnunet extra). Prints one JSON line last:
#   {"device_name", "torch", "tests": {"passed", "failed", "skipped"}, "dense_ms_per_slice",
#    "unet": {"steps", "steps_per_s", "best_val_dice", "test_dice", ...},
#    "nnunet": {"fit_s", "ms_per_slice", "dice"} or null}
# Exits 2 with a message when no GPU is present, 1 when a test or a step failed.
#
# Usage: experiments/gpu_check.sh [UNET_STEPS]   (default 600; PYTHON=... to choose python)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
STEPS=${1:-600}
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu_check: no CUDA GPU here (torch.cuda.is_available() is False); nothing checked." >&2
    exit 2
fi
OUT=$(mktemp -d -t gitract-gpu-check-XXXXXX)
status=0

echo "== pytest -m 'gpu or requires_cuda'" >&2
timeout 150 "$PY" -m pytest -m "gpu or requires_cuda" -q -p no:cacheprovider tests \
    > "$OUT/pytest.txt" 2>&1 || status=1
tail -3 "$OUT/pytest.txt" >&2

echo "== bench_dense.py --device cuda" >&2
timeout 120 "$PY" experiments/bench_dense.py --device cuda --n-slices 3 --json \
    --out "$OUT/bench_dense" > "$OUT/dense.txt" 2>&1 || status=1

echo "== U-Net, quick phantom, $STEPS steps on CUDA" >&2
timeout 240 "$PY" experiments/bench_unet.py experiments/configs/quick.yaml --threads 4 \
    --set device=cuda --set "max_steps=$STEPS" --set max_minutes=3 \
    > "$OUT/unet.txt" 2> "$OUT/unet.err" || status=1
tail -3 "$OUT/unet.err" >&2

echo "== nnU-Net 2d, tiny phantom, on CUDA (gitract compare)" >&2
if "$PY" -c "import nnunetv2" 2>/dev/null; then
    timeout 150 "$PY" -m gitract compare experiments/configs/tiny_nnunet.yaml --device cuda \
        --out "$OUT/nnunet" --no-progress > "$OUT/nnunet.txt" 2>&1 || status=1
    tail -2 "$OUT/nnunet.txt" >&2
else
    echo "nnunetv2 not installed: pip install -e '.[nnunet]' 'torch==2.13.0'; skipped" >&2
fi

"$PY" - "$OUT" "$status" <<'PY'
import json, re, sys
from pathlib import Path

import torch

out, status = Path(sys.argv[1]), int(sys.argv[2])


def last_json(path):
    lines = [x for x in path.read_text().splitlines() if x.startswith("{")] if path.exists() else []
    return json.loads(lines[-1]) if lines else None


tests = {}
summary = (out / "pytest.txt").read_text().splitlines()[-1:] if (out / "pytest.txt").exists() else []
for n, what in re.findall(r"(\d+) (passed|failed|skipped|deselected|error)", " ".join(summary)):
    tests[what] = int(n)
dense = last_json(out / "dense.txt")
unet = last_json(out / "unet.txt")
nn_summary = out / "nnunet" / "summary.json"
nnunet = None
if nn_summary.exists():
    t = json.loads(nn_summary.read_text())["tracks"]["nnunet-2d"]
    nnunet = {"fit_s": t["fit_s"], "ms_per_slice": t["ms_per_slice"], "dice": t["dice"]}
print(json.dumps({
    "device_name": torch.cuda.get_device_name(0),
    "torch": torch.__version__,
    "ok": status == 0,
    "tests": tests,
    "dense_ms_per_slice": None if dense is None else {
        k: 1000 * v["stride1"]["dense_s_per_slice"] for k, v in dense["by_block_size"].items()},
    "unet": unet,
    "nnunet": nnunet,
    "logs": str(out),
}))
PY
exit $status
