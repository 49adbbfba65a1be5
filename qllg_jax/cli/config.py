"""``qllg config reference`` (every config key with type, default and unit) and ``qllg config check FILE``."""

from __future__ import annotations

import argparse

from . import status

HELP = """\
qllg config reference   print every table and key of a config file: type, default, unit (E0 | physical), meaning
qllg config check FILE  validate a config (a [sweep] table too) without running it
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "config", help="config file reference and checks", description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", required=True, parser_class=type(parser))
    actions.add_parser("reference", help="print every config key with type, default and unit").set_defaults(
        handler=reference, compiles=False)
    check = actions.add_parser("check", help="validate a config file without running it")
    check.add_argument("config", help="TOML file")
    check.set_defaults(handler=check_config)
    return parser


def reference(args) -> int:
    from ..config import reference as text

    print(text())
    return 0


def check_config(args) -> int:
    from ..config import build_system, load_config

    table = load_config(args.config)
    if "sweep" in table:
        from ..config.sweep import build_sweep

        problem = build_sweep(table)
        status(f"qllg config: {args.config} is a valid sweep config ({problem.n_points} points, D = {problem.model.dim})")
    else:
        system = build_system(table)
        status(f"qllg config: {args.config} is a valid config (D = {system.model.dim}, {len(system.ts)} save times)")
    return 0
