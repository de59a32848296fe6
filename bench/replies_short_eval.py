"""The reply classifier on short, informal, regional replies, reported apart from long ones.

    .venv/bin/python -m bench.replies_short_eval [--data tests/data/replies_short_eval.jsonl]
        [--with-lang] [--rules-only]

The set (tests/data/README.md) holds one-line WhatsApp-style replies from Chile, Mexico,
Argentina, Colombia, Peru, Spain, Brazil and the US, written apart from the training data;
document requests carry the kind asked for (`document`). Same figures as
`bench.replies_eval` (accuracy, per-intent precision / recall, dispute recall, dates), plus
the document kind accuracy and the accuracy per region. No message text is printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.replies_eval import _load, evaluate, report

DEFAULT_DATA = Path("tests/data/replies_short_eval.jsonl")


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--with-lang", action="store_true", help="give the true language")
    parser.add_argument("--rules-only", action="store_true", help="leave the text model out")
    args = parser.parse_args(argv)
    if not args.data.exists():
        sys.exit(f"{args.data} does not exist")
    result = evaluate(_load(args.data), with_lang=args.with_lang, rules_only=args.rules_only)
    mode = "rules only" if args.rules_only else "full"
    print(f"mode: {mode}" + (", language given" if args.with_lang else ", language detected"))
    print(report(result, args.data))


if __name__ == "__main__":
    main()
