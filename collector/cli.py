"""The `collector` command: a thin face over the library.

Each subcommand parses its options, calls one function, prints. User mistakes (a broken
inventory or playbook, an unknown host) end in one line on stderr and exit status 2;
never a traceback. Exit 1 means some routers failed; 0 means everything worked.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from collector import __version__

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2
DEFAULT_INVENTORY = "inventory.yaml"


class UserError(click.ClickException):
    """A mistake in what the user gave us: one line, exit 2."""

    exit_code = EXIT_USAGE

    def show(self, file=None) -> None:  # one line, no "Usage:" noise
        click.echo(f"collector: error: {self.format_message()}", err=True)


def _user_errors() -> tuple[type[BaseException], ...]:
    from collector.inventory import InventoryError
    from collector.playbook import PlaybookError
    from collector.yamlfile import YamlError

    return (InventoryError, PlaybookError, YamlError)


def _inventory_option(f):
    return click.option(
        "-i", "--inventory", "inventory_path", type=click.Path(path_type=Path),
        default=lambda: os.environ.get("COLLECTOR_INVENTORY", DEFAULT_INVENTORY), show_default=DEFAULT_INVENTORY,
        help="Inventory file (hosts/groups/defaults) or a folder with Nornir hosts.yaml/groups.yaml/defaults.yaml.",
    )(f)


def _load_inventory(path: Path, **kwargs):
    from collector.inventory import load_inventory

    return load_inventory(path, **kwargs)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="collector")
@click.option("-v", "--verbose", count=True,
              help="More log output on stderr (-vv for debug); also accepted after the subcommand.")
@click.option("--log-format", type=click.Choice(["text", "json"]), envvar="COLLECTOR_LOG_FORMAT", default="text",
              show_default=True, help="json: one object per line with router, incident and flow fields (journald, "
              "log pipelines).")
def cli(verbose: int, log_format: str) -> None:
    """Catch repeated IPsec invalid-SPI flows on Cisco routers, debug both tunnel ends
    safely, and bundle the evidence."""
    from collector.logfmt import configure_logging

    configure_logging(verbose, log_format)


# -- inventory --------------------------------------------------------------------------


@cli.command("inventory")
@_inventory_option
@click.option("--json", "as_json", is_flag=True, help="Print the resolved inventory as JSON.")
@click.option("--check", is_flag=True, help="Only validate; exit 0 when valid, 2 otherwise.")
def inventory_cmd(inventory_path: Path, as_json: bool, check: bool) -> None:
    """Show the resolved inventory (secrets masked) or validate it."""
    if check:
        # Resolve every credential the agent would (environment, keyring) so an unset
        # variable fails here and not at 3 a.m.; a `prompt` is only listed, never asked.
        asked: list[str] = []
        inv = _load_inventory(inventory_path, resolve_credentials=True,
                              prompt=lambda message: asked.append(message.rstrip(": ")) or "")
        prompts = f"; asked at start: {', '.join(asked)}" if asked else ""
        click.echo(f"{inventory_path}: ok, {len(inv.hosts)} hosts, {len(inv.groups)} groups, "
                   f"credentials resolved{prompts}")
        return
    inv = _load_inventory(inventory_path, resolve_credentials=True, prompt=None)
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


# -- parse --------------------------------------------------------------------------------


@cli.command("parse")
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


# -- collect ------------------------------------------------------------------------------


def _select_hosts(inv, hosts: str | None, group: str | None, platform: str | None):
    names = [h.strip() for h in hosts.split(",") if h.strip()] if hosts else None
    return inv.select(hosts=names, group=group, platform=platform)


@cli.command("collect")
@_inventory_option
@click.option("--hosts", help="Comma-separated host names (default: all).")
@click.option("--group", help="Only hosts in this group.")
@click.option("--platform", type=click.Choice(["cisco_ios", "cisco_xe"]), help="Only hosts of this platform.")
@click.option("-c", "--command", "commands", multiple=True, help="A show command to run (repeatable).")
@click.option("--playbook", type=click.Path(path_type=Path, exists=False), help="A playbook whose command list to run.")
@click.option("--workers", default=20, show_default=True, type=click.IntRange(1, 500), help="Routers talked to at once.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per host and command on stdout.")
@click.option("--print", "print_mode", type=click.Choice(["raw", "parsed"]), default=None, is_flag=False,
              flag_value="raw", help="Show each output as Nornir's print_result does (--print=parsed: the records).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("bundles"), show_default=True, help="Bundle root folder.")
@click.option("--broker", metavar="redis://HOST:PORT/N", default=None,
              help="Run each router's commands on its site's `collector worker`.")
def collect_cmd(inventory_path, hosts, group, platform, commands, playbook, workers, as_json, print_mode, out,
                broker) -> None:
    """Run show commands on routers and keep raw + parsed output in a bundle."""
    from collector.collect import collect, write_collection_bundle
    from collector.hostkeys import KnownHosts
    from collector.parsing import default_registry
    from collector.sessions import SessionPool

    command_list = list(commands)
    if playbook:
        from collector.playbook import load_playbook

        command_list += list(load_playbook(playbook).collect_commands())
    if not command_list:
        raise UserError("nothing to run: give --command CMD (repeatable) or --playbook FILE")
    for c in command_list:
        _refuse_state_changing(c)
    inv = _load_inventory(inventory_path)
    selected = _select_hosts(inv, hosts, group, platform)
    if not selected:
        raise UserError("no host matches the selection")

    progress = _progress(len(selected), enabled=sys.stderr.isatty() and not as_json)
    # One pass: each router's session is closed by its own worker when its commands are
    # done, not kept for reuse (closing 200 sessions one by one at the end costs seconds).
    if broker:
        _check_broker(broker)
        missing = sorted(h.name for h in selected if not h.site)
        if missing:
            raise UserError(f"{inventory_path}: with --broker every host needs a `site`; none for: "
                            + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
        from collector.scaleout.remote import SiteClient, collect_remote

        client = SiteClient(broker)
        try:
            with progress as bar:
                run = collect_remote(selected, command_list, client, workers=workers,
                                     on_host_done=lambda o: bar.advance(o))
        finally:
            client.close()
    else:
        with SessionPool(KnownHosts.default(), max_sessions=workers, keep_open=False) as pool, progress as bar:
            run = collect(selected, command_list, pool=pool, registry=default_registry(), workers=workers,
                          on_host_done=lambda o: bar.advance(o))
    bundle = write_collection_bundle(run, out_root=out, inventory=inv)

    if as_json:
        from collector.redact import redact_data

        secrets = inv.secret_values()  # stdout is often piped to a file: same redaction as the bundle
        for outcome in run.outcomes:
            for r in outcome.results:
                row = {"host": r.host, "command": r.command, "raw": r.raw, "parsed": r.parsed,
                       "error": r.error, "seconds": round(r.seconds, 4)}
                click.echo(json.dumps(redact_data(row, secrets), default=str))
    elif print_mode:
        from collector.print_result import result_lines

        for line in result_lines(run, parsed=print_mode == "parsed", secrets=inv.secret_values(),
                                 color=sys.stdout.isatty()):
            click.echo(line)
    else:
        _print_collection(run)
    _print_failures(run)
    click.echo(f"bundle: {bundle}", err=True)
    sys.exit(EXIT_PARTIAL if run.failed else EXIT_OK)


def _refuse_state_changing(command: str) -> None:
    word = command.strip().split()[0].lower() if command.strip() else ""
    if len(word) < 2 or not "show".startswith(word):  # `sh`, `sho`, `show`
        raise UserError(f"collect runs show commands only, not {command!r}")


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
            table.add_row(r.host, r.command, status, records, f"{r.seconds:.3f}")
    Console(soft_wrap=True).print(table)


def _print_failures(run) -> None:
    failed = run.failed
    if not failed:
        click.echo(f"all {len(run.outcomes)} hosts succeeded", err=True)
        return
    click.echo(f"{len(failed)} of {len(run.outcomes)} hosts failed:", err=True)
    for outcome in failed:
        click.echo(f"  {outcome.host}: {outcome.reason}", err=True)


# -- watch, disarm, incidents ---------------------------------------------------------------


def _host_port(text: str | None) -> tuple[str, int] | None:
    if not text:
        return None
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--syslog wants HOST:PORT, not {text!r}")
    return host.strip("[]"), int(port)


def _default_playbook() -> Path:
    from collector.resources import playbooks_dir

    return playbooks_dir() / "invalid-spi.yaml"


@cli.command("watch")
@_inventory_option
@click.option("--playbook", type=click.Path(path_type=Path), default=None, help="Default: the shipped invalid-spi.yaml.")
@click.option("--once", is_flag=True, help="One pass and exit (for cron); state carries over to the next run.")
@click.option("--syslog", "syslog_at", metavar="HOST:PORT", help="Also receive syslog on this UDP address.")
@click.option("--state", "state_dir", type=click.Path(path_type=Path), default=Path("state"), show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("bundles"), show_default=True, help="Bundle root folder.")
@click.option("--dry-run", is_flag=True, help="Print the per-router command plan (do and undo); change nothing.")
@click.option("--workers", default=20, show_default=True, type=click.IntRange(1, 500))
@click.option("--max-seconds", type=float, default=None, hidden=True)
@click.option("--broker", metavar="redis://HOST:PORT/N", default=None,
              help="Correlator for several sites: send each router's work to its site's `collector worker`.")
def watch_cmd(inventory_path, playbook, once, syslog_at, state_dir, out, dry_run, workers, max_seconds,
              broker) -> None:
    """Watch routers for repeated invalid-SPI flows; arm, capture, disarm, bundle."""
    import threading

    from collector.agent import AgentBusy, install_signal_handlers
    from collector.playbook import load_playbook
    from collector.watch import WatchOptions, run_daemon, run_once

    book = load_playbook(playbook or _default_playbook())
    if not book.is_watch:
        raise UserError(f"{playbook}: playbook {book.name} has no trigger; use `collector collect --playbook`")
    inv = _load_inventory(inventory_path)
    if broker:
        _check_broker(broker)
        if dry_run:
            raise UserError("--dry-run is not available with --broker: run it on the site's jump host")
        missing = sorted(h.name for h in inv.hosts.values() if not h.site)
        if missing:
            raise UserError(f"{inventory_path}: with --broker every host needs a `site`; none for: "
                            + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
    options = WatchOptions(state_dir=state_dir, bundle_root=out, once=once, dry_run=dry_run,
                           syslog=_host_port(syslog_at), workers=workers, max_seconds=max_seconds, broker=broker)
    report = lambda message: click.echo(f"collector: {message}", err=True)  # noqa: E731
    signals: dict[int, int] = {}
    try:
        if once:
            agent = run_once(inv, book, options, report)
        else:
            stop = threading.Event()
            signals = install_signal_handlers(stop)
            report(f"watching {len(inv.hosts)} routers with playbook {book.name} (Ctrl-C to stop)")
            agent = run_daemon(inv, book, options, report, stop)
    except AgentBusy as exc:
        raise UserError(str(exc)) from None
    for bundle in agent.bundles:
        click.echo(str(bundle))
    if signals:  # the usual shell codes: 128 + the signal that stopped us
        import signal as _signal
        sys.exit(128 + (_signal.SIGTERM if _signal.SIGTERM in signals else _signal.SIGINT))
    if agent.unreadable:
        for name, why in sorted(agent.unreadable.items()):
            click.echo(f"collector: {name}: could not be read: {why}", err=True)
        sys.exit(1)


def _check_broker(broker: str) -> None:
    if not broker.startswith(("redis://", "rediss://", "unix://")):
        raise UserError(f"--broker {broker}: expected redis://HOST:PORT/N")
    try:
        import celery  # noqa: F401
        import redis  # noqa: F401
    except ImportError:
        raise UserError("--broker needs the scale extra: pip install 'collector[scale]'") from None


@cli.command("worker")
@_inventory_option
@click.option("--site", required=True, help="The site this jump host serves (inventory `site`).")
@click.option("--broker", required=True, metavar="redis://HOST:PORT/N", help="The Redis broker.")
@click.option("--playbook", type=click.Path(path_type=Path), default=None, help="Default: the shipped invalid-spi.yaml.")
@click.option("--state", "state_dir", type=click.Path(path_type=Path), default=None,
              help="This worker's step ledger and log cursors. Default: state/site-NAME.")
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1, 200),
              help="Tasks (routers) worked on at once.")
@click.option("--logins-per-second", default=2.0, show_default=True, type=click.FloatRange(0.01, 1000),
              help="New SSH logins per second for the whole site (shared by its workers).")
@click.option("--login-burst", default=10, show_default=True, type=click.IntRange(1, 10000))
@click.option("--max-armed", type=click.IntRange(1, 100000), default=None,
              help="Armed-router cap across all sites (default: the playbook's guards.max_armed_routers).")
def worker_cmd(inventory_path, site, broker, playbook, state_dir, concurrency, logins_per_second, login_burst,
               max_armed) -> None:
    """Serve one site's queue: SSH to its routers, poll, arm, capture, disarm, collect."""
    from collector.agent import AgentBusy
    from collector.playbook import load_playbook

    inv = _load_inventory(inventory_path)
    _check_broker(broker)
    if not any(h.site == site for h in inv.hosts.values()):
        raise UserError(f"{inventory_path}: no host has site {site!r}")
    from collector.scaleout.site import run_worker

    book = load_playbook(playbook or _default_playbook())
    try:
        run_worker(site, broker, inv, book, state_dir or Path("state") / f"site-{site}", concurrency=concurrency,
                   logins_per_second=logins_per_second, login_burst=login_burst, max_armed=max_armed)
    except AgentBusy as exc:
        raise UserError(str(exc)) from None


@cli.command("disarm")
@_inventory_option
@click.option("--hosts", help="Comma-separated host names.")
@click.option("--all", "all_hosts", is_flag=True, help="Every router of the inventory.")
@click.option("--state", "state_dir", type=click.Path(path_type=Path), default=Path("state"), show_default=True)
@click.option("--playbook", type=click.Path(path_type=Path), default=None)
@click.option("--broker", metavar="redis://HOST:PORT/N", default=None,
              help="Disarm through each router's site worker (it holds the router's step ledger).")
def disarm_cmd(inventory_path, hosts, all_hosts, state_dir, playbook, broker) -> None:
    """Emergency undo: recorded undo steps, then the tool's leftover dead-man applets (their undo, then removal)."""
    from collector.hostkeys import KnownHosts
    from collector.parsing import default_registry
    from collector.playbook import load_playbook
    from collector.respond.responder import Responder
    from collector.sessions import SessionPool
    from collector.state import StateStore

    if not hosts and not all_hosts:
        raise UserError("say which routers: --hosts a,b or --all")
    inv = _load_inventory(inventory_path)
    selected = list(inv.hosts.values()) if all_hosts else _select_hosts(inv, hosts, None, None)
    book = load_playbook(playbook or _default_playbook())
    failed = 0
    if broker:
        _check_broker(broker)
        from collector.scaleout.remote import RemoteResponder, SiteClient

        client = SiteClient(broker)
        try:
            remote = RemoteResponder(playbook=book, store=None, sessions=None, registry=None, client=client)
            for host in selected:
                result = remote.emergency_disarm(host)
                failed += not result.clean
                click.echo(f"{host.name}: {result.summary()}")
        finally:
            client.close()
        sys.exit(EXIT_PARTIAL if failed else EXIT_OK)
    with StateStore(state_dir / "state.db") as store, SessionPool(KnownHosts.default()) as pool:
        responder = Responder(playbook=book, store=store, sessions=pool, registry=default_registry())
        for host in selected:
            result = responder.emergency_disarm(host)
            failed += not result.clean
            click.echo(f"{host.name}: {result.summary()}")
    sys.exit(EXIT_PARTIAL if failed else EXIT_OK)


@cli.command("incidents")
@click.option("--state", "state_dir", type=click.Path(path_type=Path), default=Path("state"), show_default=True)
@click.option("--json", "as_json", is_flag=True)
def incidents_cmd(state_dir, as_json) -> None:
    """List incidents with their state and bundle path."""
    from collector.state import StateStore

    if not (state_dir / "state.db").exists():
        raise UserError(f"{state_dir}: no state here yet (run `collector watch` first)")
    with StateStore(state_dir / "state.db") as store:
        rows = [{"incident": r.incident_id, "state": r.state, "flow": r.key, "routers": list(r.routers),
                 "created": r.created_at.isoformat(), "updated": r.updated_at.isoformat(),
                 "reason": r.reason, "bundle": r.bundle_path} for r in store.incidents()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        click.echo(f"{r['created']}  {r['state']:<10} {r['flow']}  {r['bundle'] or '-'}  {r['reason']}")


def main() -> None:
    from collector.demo import demo_cmd
    from collector.diagnose.commands import audit_cmd, report_cmd
    from collector.lab.commands import lab_group
    from collector.scan_command import scan_cmd

    for command, name in ((lab_group, "lab"), (demo_cmd, "demo"), (audit_cmd, "audit"), (report_cmd, "report"),
                          (scan_cmd, "scan")):
        cli.add_command(command, name)
    try:
        from collector.logfmt import hoist_global_options

        cli.main(args=hoist_global_options(sys.argv[1:]), standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("collector: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code if exc.exit_code else EXIT_USAGE)
    except _user_errors() as exc:
        click.echo(f"collector: error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        click.echo("collector: interrupted", err=True)
        sys.exit(130)
