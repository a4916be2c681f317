"""The ``roman-platform`` command.

One entry point for operators and astronomers. Each area of the project owns its subcommand in
its own module (``register(subparsers)``), so this file only lists them; heavy imports happen
inside each subcommand's handler, which keeps ``roman-platform --help`` fast in the notebook
image and on the hub alike.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# The versions and the environment have one home, platform_lib.environment (light to import).
from platform_lib.environment import DISTRIBUTION, PIPELINE_PACKAGES, version_text  # noqa: F401

# (module, one-line summary shown if the module cannot be imported in this installation)
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "hub_config.local.cli",  # up: the local platform
    "platform_lib.data.cli",  # data: index, search, sample, psf
    "platform_lib.simulate.cli",  # simulate: scenes, images, surveys, injection
    "platform_lib.calibrate.cli",  # calibrate: L1 -> L2 -> L3 with romancal
    "platform_lib.catalogs.cli",  # catalog: static and variability catalogs
    "hub_config.quota.cli",  # quota: allocations, usage, tiers (operators)
)


class _VersionAction(argparse.Action):
    """``--version`` that reads the versions only when asked (argparse's wants the text up front)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(version_text())  # stdout, as argparse's own version action does
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="roman-platform",
        description=(
            "Roman Science Platform: start the local platform, and work with Roman data "
            "(index and search products, simulate, calibrate, build catalogs) and allocations."
        ),
        epilog="Run 'roman-platform COMMAND --help' for the options of one command.",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the full traceback of an error (default: one line)",
    )
    parser.add_argument(
        "--version",
        action=_VersionAction,
        help="print the versions of the platform, romancal, romanisim and roman_datamodels, "
        "and the environment (release) running",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # Only tolerate the module itself being absent (e.g. the notebook image has no
            # hub-side dependencies); a broken import inside an existing module must surface.
            if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand. An error the subcommand did not handle is one line on stderr (the
    traceback only with ``--debug``), and Dask's per-task tracebacks are kept out of the way."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if not args.debug:
        # workers inherit this: a failed task's "Compute Failed" traceback (logged as an error
        # by the worker) is not printed; the command reports the task's error in its own line
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "critical")
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        message = " ".join(str(exc).split()) or "(no message)"
        print(
            f"roman-platform {args.command}: error: {type(exc).__name__}: {message} "
            "(run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
