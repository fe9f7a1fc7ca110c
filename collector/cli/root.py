"""The `collector` group, the one list of its subcommands, and `main()`.

Every subcommand is named in `COMMANDS` and imported only when named: `collector
--version` and `collector collect` do not pay for the agent and the lab (about 0.5 s of
imports; docs/performance.md). `main()` turns every user mistake into one line on stderr
and exit 2, never a traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import click

from collector import __version__
from collector.cli.common import EXIT_USAGE, user_errors

# name -> "module:attribute" of its click command; the one place a subcommand is registered.
COMMANDS = {
    "inventory": "collector.cli.inventory:inventory_cmd",
    "parse": "collector.cli.parse:parse_cmd",
    "collect": "collector.cli.collect:collect_cmd",
    "watch": "collector.cli.watch:watch_cmd",
    "worker": "collector.cli.watch:worker_cmd",
    "disarm": "collector.cli.disarm:disarm_cmd",
    "incidents": "collector.cli.incidents:incidents_cmd",
    "audit": "collector.cli.diagnose:audit_cmd",
    "report": "collector.cli.diagnose:report_cmd",
    "scan": "collector.cli.scan:scan_cmd",
    "probe": "collector.cli.probe:probe_cmd",
    "eem": "collector.cli.eem:eem_group",
    "demo": "collector.cli.demo:demo_cmd",
    "lab": "collector.cli.lab:lab_group",
}


class _LazyGroup(click.Group):
    """A group whose subcommands are imported from `COMMANDS` when first named."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            module, _, attr = COMMANDS[cmd_name].partition(":")
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="collector")
@click.option("-v", "--verbose", count=True,
              help="More log output on stderr (-vv for debug); also accepted after the subcommand.")
@click.option("--log-format", type=click.Choice(["text", "json"]), envvar="COLLECTOR_LOG_FORMAT", default="text",
              show_default=True, help="json: one object per line with router, incident and flow fields (journald, "
              "log pipelines).")
@click.option("--env-file", type=click.Path(path_type=Path), default=None,
              help="Load variables from a systemd EnvironmentFile first (what cron needs to see what the service sees).")
def cli(verbose: int, log_format: str, env_file: Path | None) -> None:
    """Catch repeated IPsec invalid-SPI flows on Cisco routers, debug both tunnel ends
    safely, and bundle the evidence."""
    if env_file is not None:
        from collector.envfile import read_env_file

        os.environ.update(read_env_file(env_file))
    from collector.logfmt import configure_logging
    from collector.redact import install_secret_filter

    configure_logging(verbose, log_format)
    install_secret_filter()  # every credential the inventory resolves, in every escaped form


def main() -> None:
    """The console script: run `cli`, with one line and an exit status for every mistake."""
    try:
        from collector.logfmt import hoist_global_options

        cli.main(args=hoist_global_options(sys.argv[1:]), standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("collector: aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:  # one line too, naming the command; `-h` shows the usage
        where = f"{exc.ctx.info_name}: " if exc.ctx is not None and exc.ctx.parent is not None else ""
        click.echo(f"collector: error: {where}{exc.format_message()}", err=True)
        sys.exit(EXIT_USAGE)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code if exc.exit_code else EXIT_USAGE)
    except user_errors() as exc:
        click.echo(f"collector: error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        click.echo("collector: interrupted", err=True)
        sys.exit(130)
