"""`collector parse`: a saved command output through the template registry, offline."""

from __future__ import annotations

import json

import click

from collector.cli.common import UserError


@click.command("parse")
@click.option("--platform", default="cisco_ios", show_default=True, type=click.Choice(["cisco_ios", "cisco_xe"]))
@click.option("--command", "command", required=True, help='The command that produced the output, e.g. "show crypto ipsec sa".')
@click.option("--json", "as_json", is_flag=True, default=True, help="Print JSON (the default).")
@click.argument("file", type=click.File("r", encoding="utf-8", errors="replace"))
def parse_cmd(platform: str, command: str, as_json: bool, file) -> None:
    """Parse a saved command output offline with the same template registry."""
    from collector.parsing import default_registry

    result = default_registry().parse(platform, command, file.read())
    if result.error:
        raise UserError(f"{getattr(file, 'name', 'input')}: {result.error}")
    click.echo(json.dumps(result.records, indent=2, default=str))
