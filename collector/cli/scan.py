"""`collector scan FILE...`: the command-line face of `collector.scan`."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

from collector.cli.common import UserError, inventory_option


def _since(value: str | None):
    """An ISO date/time, or a duration back from the end of the archive (2h, 1d, 30m)."""
    if value is None:
        return None
    from collector.playbook import parse_duration

    text = value.strip()
    if text.endswith("d") and text[:-1].isdigit():
        text = f"{int(text[:-1]) * 24}h"
    try:
        return parse_duration(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: give a time (2026-12-06T08:00) or a duration back from "
                                 "the end of the archive (30m, 2h, 1d)") from None


@click.command("scan")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@inventory_option(default=False,
                  help="Inventory: names receivers by their addresses and marks sources that are known peers.")
@click.option("--since", help="Only lines at or after this time (ISO), or this long before the archive's end (2h).")
@click.option("--occurs", default=2, show_default=True, type=click.IntRange(1, 1000),
              help="Lines of one flow within --within that make it repeated (the playbook's rule).")
@click.option("--within", default="10m", show_default=True, help="Window of --occurs.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per flow, one per line.")
def scan_cmd(files, inventory_path, since, occurs, within, as_json) -> None:
    """Find invalid-SPI flows (out-of-sync tunnels) in syslog archives and saved `show
    logging` files, plain or .gz, without touching a router."""
    from collector.playbook import parse_duration
    from collector.scan import ScanError, format_table, scan_files

    try:
        window = parse_duration(within)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--within") from None
    inventory = None
    if inventory_path is not None:
        from collector.inventory import load_inventory

        inventory = load_inventory(inventory_path, resolve_credentials=False)
    try:
        result = scan_files(files, inventory=inventory, since=_since(since), occurs=occurs, within=window)
    except ScanError as exc:
        raise UserError(str(exc)) from None
    if as_json:
        for flow in result.flows:
            click.echo(json.dumps(flow.as_dict()))
        return
    for line in format_table(result):
        click.echo(line)
    end = result.end.strftime("%Y-%m-%d %H:%M:%S") if result.end else "-"
    click.echo(f"{len(result.flows)} flows; {result.lines} lines read, {result.matched} invalid-SPI lines "
               f"({result.rejected} did not validate), archive ends {end}", err=True)
