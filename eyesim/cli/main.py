"""The ``eyesim`` command group: its options, and one subcommand per module of this package."""

from __future__ import annotations

import sys

import click

from eyesim.cli.estimate import estimate
from eyesim.cli.plot import plot
from eyesim.cli.prune import prune
from eyesim.cli.sweep import sweep


class OneLineErrors(click.Group):
    """A group whose usage errors (unknown option, bad choice, missing argument) are one line and exit 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as err:
            where = f" (see '{err.ctx.command_path} --help')" if err.ctx is not None else ""
            click.echo(f"eyesim: error: {err.format_message()}{where}", err=True)
            sys.exit(2)
        except click.ClickException as err:
            click.echo(f"eyesim: error: {err.format_message()}", err=True)
            sys.exit(err.exit_code)
        except click.Abort:
            click.echo("eyesim: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="eyesim")
@click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Energy of CNNs on a row-stationary (Eyeriss-like) spatial accelerator."""
    ctx.obj = {"debug": debug}


for command in (estimate, sweep, plot, prune):
    main.add_command(command)
