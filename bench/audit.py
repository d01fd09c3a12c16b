"""Run the disclosure-log benchmark without the CLI: `python bench/audit.py --records 100000`.

The same as `s284 bench audit`; see bench/README.md for what is measured and how to read it.
"""

from __future__ import annotations

import argparse
import sys

from broker.bench_audit import run_bench_audit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="records to append")
    parser.add_argument("--db", default=None, help="SQLAlchemy URL of an empty log")
    parser.add_argument("--keep", action="store_true", help="keep the temporary SQLite file")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    return run_bench_audit(args.records, args.db, args.keep, args.json)


if __name__ == "__main__":
    sys.exit(main())
