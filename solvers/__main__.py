"""``python -m solvers``: the solver demo table (same as ``python -m experiments solver-demo``)."""
import argparse
import sys

from solvers import demo

parser = argparse.ArgumentParser(prog="python -m solvers", description=demo.__doc__.splitlines()[0])
demo.add_arguments(parser)
sys.exit(demo.run(parser.parse_args()))
