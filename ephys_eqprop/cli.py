"""Command line: ``ephys-eqprop demo``, ``ephys-eqprop validate``, ``ephys-eqprop bench``."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _demo(args) -> int:
    from .demo import run_demo, run_hh_demo

    if args.which == "hh":
        run_hh_demo(args.out, epochs=args.epochs or 12, seed=args.seed, quick=args.quick)
        return 0
    run_demo(args.out, epochs=args.epochs or 12, target=args.target, hidden=args.hidden,
             seed=args.seed, quick=args.quick)
    return 0


def _validate(args) -> int:
    from .validation import registered_cases, run_validation

    if args.list:
        for c in registered_cases():
            print(f"{c.name:<24} {c.title}")
        return 0
    try:
        results = run_validation(args.out, quick=args.quick, cases=args.case)
    except ValueError as ex:
        print(f"ephys-eqprop validate: error: {ex}", file=sys.stderr)
        return 2
    return 1 if any(r.failed for r in results) else 0


def _bench(args) -> int:
    from .bench import main as bench_main

    return bench_main((["--quick"] if args.quick else []) +
                      (["--targets", *args.targets] if args.targets else []))


def main(argv=None) -> int:
    """Entry point of the ``ephys-eqprop`` command."""
    parser = argparse.ArgumentParser(
        prog="ephys-eqprop",
        description="Neural networks as electrical circuits in Brian2, trained with "
                    "equilibrium propagation.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="train a diode-resistor circuit on Iris (default) or a Hodgkin-Huxley "
                     "network ('demo hh'), check the gradients, write figures")
    demo.add_argument("which", nargs="?", choices=["iris", "hh"], default="iris",
                      help="iris: static EP on a diode-resistor circuit; hh: a spiking "
                           "Hodgkin-Huxley network trained with the adjoint gradient")
    demo.add_argument("--out", default="ephys_eqprop_demo", help="folder for the figures")
    demo.add_argument("--epochs", type=int, default=None, help="training epochs (default 12)")
    demo.add_argument("--hidden", type=int, default=8, help="diode neurons (default 8)")
    demo.add_argument("--target", choices=["numpy", "cython"], default="numpy",
                      help="Brian2 code-generation target (default numpy: no compiler needed)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quick", action="store_true", help="two epochs only (for tests)")
    demo.set_defaults(func=_demo)
    val = sub.add_parser(
        "validate", help="check the simulator against closed forms and ngspice, and EP "
                         "against exact gradients; write a report with figures; exit "
                         "status 1 if any check fails")
    val.add_argument("--quick", action="store_true",
                     help="smaller circuits and fewer sweep points (about 15 s)")
    val.add_argument("--out", default="ephys_eqprop_validation",
                     help="folder for report.md and the figures (default "
                          "ephys_eqprop_validation)")
    val.add_argument("--case", action="append", metavar="NAME",
                     help="run only this case (repeatable; see --list)")
    val.add_argument("--list", action="store_true", help="list the cases and exit")
    val.set_defaults(func=_validate)
    bench = sub.add_parser(
        "bench", help="time gradients on each Brian2 target side by side (and against JAX "
                      "BPTT if the bench extra is installed); print tables")
    bench.add_argument("--quick", action="store_true", help="fewer repeats (about a minute)")
    bench.add_argument("--targets", nargs="+", choices=["numpy", "cython", "cpp_standalone"],
                       help="Brian2 targets to measure (default: every one that works here)")
    bench.set_defaults(func=_bench)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
