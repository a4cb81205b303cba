"""The ``eyesim`` command group: its options, and one subcommand per module of this package."""

from __future__ import annotations

import click

from eyesim.cli.estimate import estimate
from eyesim.cli.plot import plot
from eyesim.cli.prune import prune
from eyesim.cli.sweep import sweep


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="eyesim")
@click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Energy of CNNs on a row-stationary (Eyeriss-like) spatial accelerator."""
    ctx.obj = {"debug": debug}


for command in (estimate, sweep, plot, prune):
    main.add_command(command)
