"""`collector collect`: show commands on routers, raw + parsed output in a bundle."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from collector.cli.common import (
    EXIT_OK,
    EXIT_PARTIAL,
    UserError,
    check_broker,
    inventory_option,
    load_inventory,
    require_sites,
    select_hosts,
)


@click.command("collect")
@inventory_option
@click.option("--hosts", help="Comma-separated host names (default: all).")
@click.option("--group", help="Only hosts in this group.")
@click.option("--platform", type=click.Choice(["cisco_ios", "cisco_xe"]), help="Only hosts of this platform.")
@click.option("-c", "--command", "commands", multiple=True, help="A show command to run (repeatable).")
@click.option("--playbook", type=click.Path(path_type=Path, exists=False), help="A playbook whose command list to run.")
@click.option("--workers", default=20, show_default=True, type=click.IntRange(1, 500), help="Routers talked to at once.")
@click.option("--processes", default=0, show_default="0: on Linux one per core, 10 routers or more each",
              type=click.IntRange(0, 64), help="Processes sharing the routers (the workers are shared among them).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per host and command on stdout.")
@click.option("--print", "print_mode", type=click.Choice(["raw", "parsed"]), default=None, is_flag=False,
              flag_value="raw", help="Show each output as Nornir's print_result does (--print=parsed: the records).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("bundles"), show_default=True, help="Bundle root folder.")
@click.option("--broker", metavar="redis://HOST:PORT/N", default=None,
              help="Run each router's commands on its site's `collector worker`.")
def collect_cmd(inventory_path, hosts, group, platform, commands, playbook, workers, processes, as_json, print_mode,
                out, broker) -> None:
    """Run show commands on routers and keep raw + parsed output in a bundle."""
    from collector.collect import CollectionBundle, require_read_only

    command_list = list(commands)
    if playbook:
        from collector.playbook import load_playbook

        command_list += list(load_playbook(playbook).collect_commands())
    if not command_list:
        raise UserError("nothing to run: give --command CMD (repeatable) or --playbook FILE")
    # collect() refuses anything not read-only; asked here first so a refusal costs nothing
    # (no inventory read, no bundle folder). One rule: collector.readonly.
    require_read_only(command_list)
    inv = load_inventory(inventory_path)
    selected = select_hosts(inv, hosts, group, platform)
    if not selected:
        raise UserError("no host matches the selection")

    progress = _progress(len(selected), enabled=sys.stderr.isatty() and not as_json)
    # One pass: each router's session is closed by its own worker when its commands are
    # done, not kept for reuse (closing 200 sessions one by one at the end costs seconds).
    if broker:
        check_broker(broker)
        require_sites(inventory_path, selected)
        from collector.scaleout.remote import SiteClient, collect_remote

        client = SiteClient(broker)
        writing = CollectionBundle(out, inv)
        try:
            with progress as bar:
                run = collect_remote(selected, command_list, client, workers=workers,
                                     on_host_done=lambda o: (bar.advance(o), writing.add(o)))
        except BaseException:
            writing.abandon()
            raise
        finally:
            client.close()
        bundle = writing.seal(run)
    else:
        from collector.collect_processes import collect_from_here
        from collector.hostkeys import KnownHosts
        from collector.parsing import default_registry

        # The bundle is written as routers finish, while the others are still being read.
        writing = CollectionBundle(out, inv)
        try:
            run = collect_from_here(selected, command_list, known_hosts=KnownHosts.default(),
                                    registry=default_registry(), workers=workers, processes=processes,
                                    on_host_done=lambda o: (progress.advance(o), writing.add(o)), alongside=progress)
        except BaseException:
            writing.abandon()
            raise
        bundle = writing.seal(run)

    if as_json:
        from collector.redact import redacted_view

        secrets = inv.secret_values()  # stdout is often piped to a file: same redaction as the bundle
        memo = writing.redaction_memo  # the bundle redacted these texts already: each is redacted once
        for outcome in run.outcomes:
            for r in outcome.results:
                row = {"host": r.router, "command": r.command, "raw": r.text, "parsed": r.parsed,
                       "error": r.error, "seconds": round(r.seconds, 4)}
                click.echo(json.dumps(redacted_view(row, secrets, memo=memo), default=str))
    elif print_mode:
        from collector.cli.print_result import result_lines

        for line in result_lines(run, parsed=print_mode == "parsed", secrets=inv.secret_values(),
                                 color=sys.stdout.isatty()):
            click.echo(line)
    else:
        _print_collection(run)
    _print_failures(run)
    click.echo(f"bundle: {bundle}", err=True)
    sys.exit(EXIT_PARTIAL if run.failed else EXIT_OK)


class _progress:
    """A rich progress bar on a terminal, nothing otherwise."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled = total, enabled
        self._bar = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("collecting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 transient=True)
            self._bar.start()
            self._task = self._bar.add_task("collect", total=self.total)
        return self

    def advance(self, _outcome=None) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()


def _print_collection(run) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(run.outcomes)} hosts, {len(run.commands)} commands")
    for column in ("host", "command", "result", "records", "seconds"):
        table.add_column(column)
    for outcome in run.outcomes:
        for r in outcome.results:
            status = "ok" if r.error is None else f"[red]{r.error_kind}[/red]"
            records = str(len(r.parsed)) if r.parsed is not None else "-"
            table.add_row(r.router, r.command, status, records, f"{r.seconds:.3f}")
    Console(soft_wrap=True).print(table)


def _print_failures(run) -> None:
    failed = run.failed
    if not failed:
        click.echo(f"all {len(run.outcomes)} hosts succeeded", err=True)
        return
    click.echo(f"{len(failed)} of {len(run.outcomes)} hosts failed:", err=True)
    for outcome in failed:
        click.echo(f"  {outcome.host}: {outcome.reason}", err=True)
