"""The `s284` command line: click commands and the one error -> exit-code map (main.py)."""

from broker.cli.main import main

__all__ = ["main"]
