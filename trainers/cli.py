"""The `scl-slt` command line. It parses arguments and calls the library; nothing more.

A user mistake (missing file, unknown config key, bad value, bad corpus) ends with one clear
line on stderr and exit code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

USER_ERROR_EXIT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scl-slt",
        description="Selective Contrastive Learning for gloss-free Sign Language Translation.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="run the whole recipe on the built-in synthetic sign language (CPU)",
        description="Generate the synthetic corpus, run reference → Pair Selection → scl → translate, "
        "print dev/test BLEU-4 and translate one test video.",
    )
    demo.add_argument("--output-dir", default="scl-slt-demo", help="run directory (default: %(default)s)")
    demo.add_argument("--quick", action="store_true", help="the same path on a tiny corpus (about a minute)")

    train = commands.add_parser(
        "train",
        help="run (or resume) the recipe from a YAML config",
        description="Run reference → Pair Selection → scl → translate → test evaluation from a config "
        "(see configs/); an interrupted run resumes where it stopped.",
    )
    train.add_argument("config", help="recipe YAML file")
    train.add_argument("--output-dir", required=True, help="run directory")
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set scl.epochs=10 (repeatable; VALUE is YAML)",
    )
    return parser


def parse_overrides(pairs: Sequence[str]) -> dict[str, object]:
    """``["scl.epochs=10"]`` → ``{"scl.epochs": 10}``."""
    overrides = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def run_command(args: argparse.Namespace) -> None:
    # Imported on use: `scl-slt --help` should not wait for the training stack.
    if args.command == "demo":
        from .demo import run_demo

        run_demo(args.output_dir, quick=args.quick)
    elif args.command == "train":
        from .recipe import run_recipe
        from .recipe_config import RecipeConfig

        config = RecipeConfig.from_yaml(args.config, parse_overrides(args.set))
        run_recipe(config, Path(args.output_dir))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from datasets_scripts.errors import CorpusError

    from .recipe_config import ConfigError

    try:
        run_command(args)
    except (ConfigError, CorpusError, FileNotFoundError, ValueError) as error:
        # A corpus error lists every bad sample on its own line: keep them.
        print(f"scl-slt {args.command}: error: {error}", file=sys.stderr)
        return USER_ERROR_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(main())
