"""`python -m broker.cli` is `s284`."""

from broker.cli.main import main

main()
