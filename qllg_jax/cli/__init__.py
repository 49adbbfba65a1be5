"""The ``qllg`` command line. Each subcommand lives in its own module exposing ``add_parser`` and ``main``."""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = ("reproduce", "run", "sweep")

DESCRIPTION = """\
q-LLG spin dynamics (Liu et al. 2024) with JAX.

Units: energies in E0 and times in hbar/E0 (hbar = 1). The paper's figures use E0 = mu_B * 1 T
(a 1 T field on a g = 2 spin-1/2 is one unit; one time unit is about 11.37 ps). Config files may give
energies in meV, fields in tesla and times in ps instead; see README.md, "Units".
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qllg", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
