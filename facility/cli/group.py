"""The ``facility`` command line: a thin translator from arguments to library calls.

Commands parse, call the library, and turn library exceptions into one clear line on
stderr and an exit code (docs/ARCHITECTURE.md: 0 ok, 1 a check found a problem, 2 bad usage /
configuration / refused action, 3 runtime failure, 70 internal error). Heavy modules
(numba, textual, pymodbus) are imported inside the commands that need them, so
``facility --help`` stays fast and imports neither numba nor textual.
"""

from __future__ import annotations

import click

from facility.cli.errors import INTERNAL, CliError, Exit
from facility.domain.text import clean_terminal

CONFIG_HELP = "configuration file (default ./config.toml); the database path comes from it"


class FacilityGroup(click.Group):
    """A click group that turns every exception into one line and docs/ARCHITECTURE.md's exit codes."""

    def invoke(self, ctx):  # noqa: D102 - click API
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exit as exc:
            ctx.exit(exc.code)
        except CliError as exc:
            for line in exc.lines:
                say(line, err=True)
            ctx.exit(exc.code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except Exception as exc:  # the top-level net: never a traceback for the user
            if ctx.obj and ctx.obj.get("debug"):
                raise
            from facility.cli.errors import translate

            mapped = translate(exc)
            if mapped is not None:
                for line in mapped.lines:
                    say(line, err=True)
                ctx.exit(mapped.code)
            say(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for"
                " the traceback)", err=True)
            ctx.exit(INTERNAL)


@click.group(cls=FacilityGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="show tracebacks of internal errors")
@click.pass_context
def cli(ctx, debug):
    """Facility monitoring for cleanrooms and microelectronics plants.

    Modbus acquisition, ISO 14644-1 / EU GMP Annex 1 limits, ISA-18.2 alarms, paging and
    a tamper-evident audit trail. Not a safety system: gas detectors and hard-wired
    shutdowns protect people; this monitors, records and notifies.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def say(line: str, err: bool = False) -> None:
    """Print one line for a person (stdout, or stderr with ``err``).

    Operator text is data: reasons, logins, names and config strings reach the terminal with
    their control characters and escape sequences dropped and their newlines as spaces
    (``facility.domain.text.clean_terminal``), so a reason cannot move the cursor, retitle
    the window or forge a line of the listing. JSON lines pass unchanged (``json.dumps``
    escapes every control character already).
    """
    click.echo(clean_terminal(line), err=err)


def config_option(f):
    """The ``--config`` option every command takes."""
    return click.option("--config", "config_path", default="config.toml", show_default=True,
                        help=CONFIG_HELP)(f)


def load(config_path: str):
    """Load and validate the configuration, or raise a CliError with one line per problem."""
    from facility.config import ConfigError, load_config

    try:
        return load_config(config_path)
    except ConfigError as exc:
        raise CliError(exc.problems, 2) from None
