"""Run the s284 pipeline benchmark without the CLI: `python bench/pipeline.py -n 5000`.

The same as `s284 bench`; see bench/README.md for what is measured and how to read it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from broker.benchmark import run_bench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--messages", type=int, default=5000, help="messages to send")
    parser.add_argument(
        "--rate", type=int, default=500, help="offered rate (msg/s) for the latency run"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    return asyncio.run(run_bench(args.messages, args.rate, args.json))


if __name__ == "__main__":
    sys.exit(main())
