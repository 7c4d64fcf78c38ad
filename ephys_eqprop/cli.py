"""Command line: ``ephys-eqprop demo``."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _demo(args) -> int:
    from .demo import run_demo

    run_demo(args.out, epochs=args.epochs, target=args.target, hidden=args.hidden,
             seed=args.seed, quick=args.quick)
    return 0


def main(argv=None) -> int:
    """Entry point of the ``ephys-eqprop`` command."""
    parser = argparse.ArgumentParser(
        prog="ephys-eqprop",
        description="Neural networks as electrical circuits in Brian2, trained with "
                    "equilibrium propagation.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="train a diode-resistor circuit on Iris, check EP against the exact "
                     "gradient, write figures")
    demo.add_argument("--out", default="ephys_eqprop_demo", help="folder for the figures")
    demo.add_argument("--epochs", type=int, default=12, help="training epochs (default 12)")
    demo.add_argument("--hidden", type=int, default=8, help="diode neurons (default 8)")
    demo.add_argument("--target", choices=["numpy", "cython"], default="numpy",
                      help="Brian2 code-generation target (default numpy: no compiler needed)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quick", action="store_true", help="two epochs only (for tests)")
    demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
