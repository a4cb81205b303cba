"""The ``eyesim`` command group: its options, and one subcommand per module of this package."""

from __future__ import annotations

import sys
import traceback

import click

from eyesim.cli.estimate import estimate
from eyesim.cli.plot import plot
from eyesim.cli.prune import prune
from eyesim.cli.sweep import sweep
from eyesim.errors import EyesimError

DEBUG_HELP = "Show the full traceback on errors (before or after the command's name: eyesim estimate ... --debug)."


class OneLineErrors(click.Group):
    """A group whose usage errors (unknown option, bad choice, missing argument) are one line and exit 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        try:
            code = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
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
        except EyesimError as err:  # raised before a command's guard, e.g. an unusable EYESIM_CACHE_DIR at import
            _fail(argv, f"eyesim: error: {err}", 2)
        except Exception as err:  # noqa: BLE001 - last resort outside a command's guard: never a bare traceback
            _fail(argv, f"eyesim: internal error: {type(err).__name__}: {err} (rerun with --debug for the traceback)",
                  1)
        sys.exit(code if isinstance(code, int) else 0)


def _fail(argv: list[str], line: str, code: int) -> None:
    """One line on stderr (after the traceback when --debug is anywhere on the command line), then exit."""
    if "--debug" in argv:
        traceback.print_exc()
    click.echo(" ".join(line.splitlines()), err=True)
    sys.exit(code)


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    """``--debug`` after a command's name: the same switch the group's option sets, which the guard reads."""
    if value:
        ctx.ensure_object(dict)["debug"] = True
    return value


def debug_option() -> click.Option:
    """The ``--debug`` flag every command takes as well as the group (read before the command's other options)."""
    return click.Option(["--debug"], is_flag=True, expose_value=False, is_eager=True, callback=_set_debug,
                        help=DEBUG_HELP)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="eyesim")
@click.option("--debug", is_flag=True, help=DEBUG_HELP)
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Energy of CNNs on a row-stationary (Eyeriss-like) spatial accelerator."""
    ctx.obj = {"debug": debug}


for command in (estimate, sweep, plot, prune):
    if not any("--debug" in param.opts for param in command.params):
        command.params.append(debug_option())
    main.add_command(command)
