"""`collector inventory`: show the resolved inventory (secrets masked) or validate it."""

from __future__ import annotations

import json
from pathlib import Path

import click

from collector.cli.common import inventory_option, load_inventory


@click.command("inventory")
@inventory_option
@click.option("--json", "as_json", is_flag=True, help="Print the resolved inventory as JSON.")
@click.option("--check", is_flag=True, help="Only validate; exit 0 when valid, 2 otherwise.")
def inventory_cmd(inventory_path: Path, as_json: bool, check: bool) -> None:
    """Show the resolved inventory (secrets masked) or validate it."""
    if check:
        # Resolve every credential the agent would (environment, keyring) so an unset
        # variable fails here and not at 3 a.m.; a `prompt` is only listed, never asked.
        asked: list[str] = []
        inv = load_inventory(inventory_path, resolve_credentials=True,
                              prompt=lambda message: asked.append(message.rstrip(": ")) or "")
        prompts = f"; asked at start: {', '.join(asked)}" if asked else ""
        click.echo(f"{inventory_path}: ok, {len(inv.hosts)} hosts, {len(inv.groups)} groups, "
                   f"credentials resolved{prompts}")
        return
    inv = load_inventory(inventory_path, resolve_credentials=True, prompt=None)
    data = inv.masked()
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{inventory_path} ({len(inv.hosts)} hosts)")
    for column in ("host", "address", "port", "platform", "groups", "site", "owns"):
        table.add_column(column)
    for host in inv.hosts.values():
        table.add_row(host.name, host.hostname, str(host.port), host.platform, ",".join(host.groups),
                      host.site or "", ", ".join(host.addresses))
    Console().print(table)
