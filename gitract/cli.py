"""The ``gitract`` command: a thin dispatcher over ``gitract.commands.*``.

Subcommand modules are imported only when used, so ``gitract validate`` never imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

#: name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "phantom": ("gitract.commands.phantom", "write the synthetic phantom dataset (Kaggle layout)"),
    "validate": ("gitract.commands.validate", "check a Kaggle-layout dataset's integrity"),
    "score": ("gitract.commands.score", "score a submission with the competition metric"),
    "blocks": ("gitract.commands.blocks", "train / predict / evaluate block classifiers"),
    "cnn": ("gitract.commands.cnn", "train / evaluate the CNN block classifier"),
    "unet": ("gitract.commands.unet", "train / predict with the 2.5D U-Net"),
    "compare": ("gitract.commands.compare", "run every track on one split and write a report"),
    "report": ("gitract.commands.report", "rebuild a run's report without retraining"),
    "predict": ("gitract.commands.predict", "predict a Kaggle submission with a trained track"),
}


def _available() -> dict[str, tuple[str, str]]:
    return {
        name: spec for name, spec in COMMANDS.items() if importlib.util.find_spec(spec[0]) is not None
    }


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="gitract", description="gitract command line")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = argv[0] if argv else None
    for name, (module, help_text) in _available().items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        if name == chosen:
            importlib.import_module(module).configure_parser(p)
    args = parser.parse_args(argv)
    from gitract.data.record import DataError

    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
