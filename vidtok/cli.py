"""The ``vidtok`` command line.

Sub-commands:

* ``vidtok list [KIND] [PATTERN]`` — registered tokenizers, heads, backbones and recipes.
* ``vidtok --version``.

Heavy imports happen inside each sub-command, so ``vidtok --help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]

_KINDS = {"tokenizers": "TOKENIZERS", "heads": "HEADS", "backbones": "BACKBONES", "recipes": "RECIPES"}


def _cmd_list(args: argparse.Namespace) -> int:
    import vidtok

    kinds = [args.kind] if args.kind else list(_KINDS)
    for kind in kinds:
        registry = getattr(vidtok, _KINDS[kind])
        names = registry.list(args.pattern)
        print(f"{kind} ({len(names)}):")
        for name in names:
            entry = registry.get(name)
            doc = (entry.__doc__ or "").strip().splitlines()
            summary = doc[0] if doc else ""
            aliases = sorted(registry.aliases(name))
            alias_text = f"  [aliases: {', '.join(aliases)}]" if aliases else ""
            print(f"  {name:<24} {summary}{alias_text}")
        if not names:
            print("  (none registered)" if args.pattern == "*" else f"  (none match {args.pattern!r})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``vidtok`` command."""
    from vidtok import __version__

    parser = argparse.ArgumentParser(
        prog="vidtok", description="Autoregressive video generation with compressed video tokens."
    )
    parser.add_argument("--version", action="version", version=f"vidtok {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p_list = sub.add_parser("list", help="list registered components and recipes")
    p_list.add_argument("kind", nargs="?", choices=sorted(_KINDS), help="only this kind")
    p_list.add_argument("pattern", nargs="?", default="*", help="fnmatch wildcard, e.g. 'dicode_*'")
    p_list.set_defaults(func=_cmd_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``vidtok`` command with ``argv`` (defaults to ``sys.argv[1:]``) and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args))
    except (KeyError, ValueError, FileNotFoundError, TypeError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"vidtok {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
