"""``python -m eval.bench [engine|model|service|spike|reload|soak|all] [--long]``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.bench", description=__doc__)
    parser.add_argument("which", nargs="*", default=["all"])
    parser.add_argument("--long", action="store_true", help="the long versions")
    args = parser.parse_args(argv)
    which = set(args.which)
    everything = "all" in which
    if everything or "engine" in which:
        from eval.bench import engine_overhead

        engine_overhead.run(n=20_000 if args.long else 5_000)
    if everything or "model" in which:
        from eval.bench import model_path

        model_path.run(n=60 if args.long else 20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
