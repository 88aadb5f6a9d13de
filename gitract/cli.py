"""The ``gitract`` command: a thin dispatcher over ``gitract.commands.*``.

Subcommand modules are imported only when used, so ``gitract validate`` never imports torch.
Every command shares the ending of a run: a known problem (:class:`DataError`, a config
problem, a file the system cannot open, a flag the parser rejects) prints one line
``error: <file or key>: <problem>`` on stderr and exits 2; Ctrl-C prints one line (how to
resume, where there is a run folder) and exits 130, SIGTERM the same line and 143;
anything else prints ``error: unexpected: ...`` and exits 1. ``--debug`` adds the
traceback. ``-v`` / ``--log-level`` put the log lines on the console too.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import shlex
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn

from gitract import __version__
from gitract.data.record import DataError
from gitract.utils.outputs import OutputFolderError

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
    "export": ("gitract.commands.export", "a split or a track's predictions as COCO JSON"),
}

#: Examples of the commands whose modules give none of their own (``parser.epilog``).
EXAMPLES: dict[str, str] = {
    "phantom": "example:\n  gitract phantom data/phantom --cases 6 --n-jobs 2\n",
    "validate": "example:\n  gitract validate /data/uw-madison-gi-tract-image-segmentation\n",
    "score": "example:\n  gitract score --data-dir /data/uw-madison-gi-tract-image-segmentation"
             " --pred submission.csv\n",
}

_MAIN_EXAMPLES = """examples:
  gitract compare experiments/configs/quick.yaml --n-jobs 2
  gitract compare experiments/configs/kaggle.yaml --set data.path=/data/uwmgi -v
  gitract predict reports/quick --track rf-33 --data-dir DATA --images-subdir train --out sub.csv
  gitract COMMAND --help          the options and an example of each command
"""

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

EXIT_ERROR, EXIT_UNEXPECTED, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 1, 130, 143


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a batch system's time limit), raised where the command is so
    that it stops as on Ctrl-C: finished steps kept, one line saying how to resume."""


_MAIN_PID: list[int] = []


def _raise_terminated(signum: int, frame: object) -> None:
    if _MAIN_PID and os.getpid() != _MAIN_PID[-1]:
        # A worker a library forked (nnU-Net's pools) inherits the handler; its pool
        # ends it with SIGTERM, which must end it quietly, as by default.
        os._exit(128 + signum)
    raise Terminated()


def _catch_sigterm() -> bool:
    """Turn SIGTERM into :class:`Terminated` while a command runs, where signals can be
    set (the main thread); returns whether it did."""
    if threading.current_thread() is not threading.main_thread() or \
            not hasattr(signal, "SIGTERM"):
        return False
    _MAIN_PID.append(os.getpid())
    signal.signal(signal.SIGTERM, _raise_terminated)
    return True


class _Parser(argparse.ArgumentParser):
    """argparse with gitract's ending: a flag it rejects is one stderr line, ``error:
    --threads: expected a positive int, got '0' (gitract predict --help shows the
    options)``, exit 2 (its subcommand parsers are of this class too)."""

    def error(self, message: str) -> NoReturn:
        text = _one_line(message)
        text = text[len("argument "):] if text.startswith("argument ") else text
        self.exit(EXIT_ERROR, f"error: {text} ({self.prog} --help shows the options)\n")


def _available() -> dict[str, tuple[str, str]]:
    return {
        name: spec for name, spec in COMMANDS.items() if importlib.util.find_spec(spec[0]) is not None
    }


def _add_common(parser: argparse.ArgumentParser) -> None:
    """``--debug``, ``-v``, ``--log-level``, ``--no-progress`` on ``parser`` (given before
    or after the command; an option a command defines itself is left to it)."""
    have = set(parser._option_string_actions)
    options = [
        (("--debug",), {"action": "store_true",
                        "help": "show the traceback of an error (for a bug report)"}),
        (("-v",), {"dest": "verbosity", "action": "count",
                   "help": "log lines on the console too (-v: info, -vv: debug)"}),
        (("--log-level",), {"type": str.upper, "choices": _LEVELS, "metavar": "LEVEL",
                            "help": "console log level: DEBUG, INFO, WARNING (default), ERROR"}),
        (("--no-progress",), {"action": "store_true",
                              "help": "no progress bars (they are drawn only on a terminal)"}),
    ]
    for flags, kwargs in options:
        if not have.intersection(flags):
            parser.add_argument(*flags, default=argparse.SUPPRESS, **kwargs)


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every subcommand parser below it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _parsers(child)


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The ``gitract`` parser; only the command named in ``argv`` is configured (the
    others' modules are not imported)."""
    parser = _Parser(prog="gitract", description="gitract command line",
                                     epilog=_MAIN_EXAMPLES)
    parser.add_argument("--version", action="version", version=f"gitract {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    available = _available()
    chosen = next((a for a in argv if a in available), None)
    for name, (module, help_text) in available.items():
        p = sub.add_parser(name, help=help_text, description=help_text,
                           epilog=EXAMPLES.get(name))
        p.set_defaults(_module=module)
        if name == chosen:
            importlib.import_module(module).configure_parser(p)
    for p in _parsers(parser):
        _add_common(p)
        p.formatter_class = argparse.RawDescriptionHelpFormatter  # examples keep their lines
    return parser


def _console_level(args: argparse.Namespace) -> int:
    if getattr(args, "log_level", None):
        return getattr(logging, args.log_level)
    verbosity = getattr(args, "verbosity", 0) or 0
    return logging.DEBUG if verbosity >= 2 else logging.INFO if verbosity == 1 else logging.WARNING


def _console_handler(level: int) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s",
                                           datefmt="%H:%M:%S"))
    # Lines meant for a run's log.txt only (its failure, its interruption): the console
    # gets its own one-line ending from main().
    handler.addFilter(lambda record: not getattr(record, "file_only", False))
    return handler


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _interrupted(args: argparse.Namespace, argv: Sequence[str], *,
                 how: str = "interrupted") -> str:
    run_dir = getattr(args, "run_dir_", None)
    if run_dir is not None and Path(run_dir).is_dir():
        return (f"{how}: finished steps are kept in {run_dir}; to resume, run the same "
                f"command again: gitract {shlex.join(argv)}")
    return f"{how}: run the command again to redo it"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``gitract ARGV``; returns the exit status (0 ok, 1 unexpected error, 2 a known
    problem, 130 interrupted by Ctrl-C, 143 terminated by SIGTERM)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    for name in ("debug", "no_progress"):
        if not hasattr(args, name):
            setattr(args, name, False)

    level = _console_level(args)
    logger = logging.getLogger("gitract")
    old_level = logger.level
    handler = _console_handler(level)
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)
    previous = signal.getsignal(signal.SIGTERM) if hasattr(signal, "SIGTERM") else None
    catching = _catch_sigterm()
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except KeyboardInterrupt as exc:
        if args.debug:
            traceback.print_exc()
        if isinstance(exc, Terminated):
            print(_interrupted(args, argv, how="interrupted (SIGTERM)"), file=sys.stderr)
            return EXIT_TERMINATED
        print(_interrupted(args, argv), file=sys.stderr)
        return EXIT_INTERRUPTED
    except (DataError, OutputFolderError) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        # A file the system could not open or write (permissions, a full disk): named.
        if args.debug:
            traceback.print_exc()
        where = exc.filename if exc.filename is not None else "system"
        print(f"error: {where}: {_one_line(exc.strerror or exc)}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:
        if args.debug:
            raise
        print(f"error: unexpected: {type(exc).__name__}: {_one_line(exc)} (rerun with --debug "
              "for the traceback, and report it)", file=sys.stderr)
        return EXIT_UNEXPECTED
    finally:
        if catching:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
        logger.removeHandler(handler)
        logger.setLevel(old_level)


if __name__ == "__main__":
    sys.exit(main())
