"""`virtue config show|diff`: print a resolved experiment config, or what differs between two."""

from __future__ import annotations

import argparse

from ..config import flatten, load_experiment, to_yaml


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="show or compare experiment configs")
    cmds = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)

    show = cmds.add_parser("show", help="print the resolved config of an experiment")
    show.add_argument("experiment", help="name under experiments/ (e.g. tiny) or a YAML path")
    show.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. train.lr=1e-3")
    show.set_defaults(func=_show)

    diff = cmds.add_parser("diff", help="list the keys whose values differ between two experiments")
    diff.add_argument("a")
    diff.add_argument("b")
    diff.set_defaults(func=_diff)


def _show(args: argparse.Namespace) -> int:
    print(to_yaml(load_experiment(args.experiment, args.overrides)), end="")
    return 0


def _diff(args: argparse.Namespace) -> int:
    a, b = flatten(load_experiment(args.a)), flatten(load_experiment(args.b))
    keys = [k for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]
    if not keys:
        print(f"{args.a} and {args.b} resolve to the same config")
        return 0
    width = max(len(k) for k in keys)
    print(f"{'key':<{width}}  {args.a}  ->  {args.b}")
    for k in keys:
        print(f"{k:<{width}}  {a.get(k)!r}  ->  {b.get(k)!r}")
    return 0
