"""`python -m bench ...` is `s284 bench ...` without the installed command."""

from bench.cli import bench

bench(prog_name="python -m bench")
