"""Command-line flags derived from a settings dataclass (each field ``foo_bar`` becomes ``--foo-bar``).

The machinery is shared by every command and lives in :mod:`experiments.cli_options`; these names are kept
here for the trajectory modules that import them.
"""
from experiments.cli_options import add_dataclass_arguments, flag, given, option_name

__all__ = ["add_dataclass_arguments", "flag", "given", "option_name"]
