"""Run the comparison: ``python experiments/compare.py CONFIG [--out DIR] [--seed N]``.

Same code as ``gitract compare``: every track (RF and LightGBM at 33 and 63, the CNN at 33
and 63, the U-Net) on one case-grouped split, one threshold-tuning rule and one metric;
the report goes to ``reports/<config name>/`` unless ``--out`` says otherwise.
"""

import sys

from gitract.cli import main

if __name__ == "__main__":
    sys.exit(main(["compare", *sys.argv[1:]]))
