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
    """What ends in one line and exit 2: the user-input branch of the error root, and a
    state store that cannot be trusted (the line says what to do)."""
    from collector.errors import StateStoreError, UserInputError
    from collector.inventory import InventoryError
    from collector.playbook import PlaybookError
    from collector.yamlfile import YamlError

    return (UserInputError, StateStoreError, InventoryError, PlaybookError, YamlError)


def _default_state_dir() -> str:
    from collector.state import default_state_dir

    return str(default_state_dir())


def _checked_state_dir(_ctx, _param, value) -> Path:
    """--state must be a folder this user may use (or one that can be made): a device, a
    FIFO or a file there would otherwise fail deep inside with a traceback."""
    path = Path(value)
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            raise UserError(f"--state {path}: not a folder (give the folder that holds state.db)")
        if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
            raise UserError(f"--state {path}: not readable and writable by uid {os.getuid()}")
    else:
        parent = next((p for p in path.parents if p.exists()), None)
        if parent is not None and not parent.is_dir():
            raise UserError(f"--state {path}: {parent} is not a folder")
    return path


def _state_option(f):
    return click.option(
        "--state", "state_dir", type=click.Path(path_type=Path, readable=False), default=_default_state_dir,
        callback=_checked_state_dir,
        show_default="$COLLECTOR_STATE, else ~/.local/state/collector",
        help="The agent's state folder (state.db, lock file, known_hosts).",
    )(f)


def _inventory_option(f):
    return click.option(
        "-i", "--inventory", "inventory_path", type=click.Path(path_type=Path),
        default=lambda: os.environ.get("COLLECTOR_INVENTORY", DEFAULT_INVENTORY), show_default=DEFAULT_INVENTORY,
        help="Inventory file (hosts/groups/defaults) or a folder with Nornir hosts.yaml/groups.yaml/defaults.yaml.",
    )(f)


def _load_inventory(path: Path, **kwargs):
    from collector.inventory import load_inventory

    return load_inventory(path, **kwargs)


class _LazyGroup(click.Group):
    """Subcommands that live in other packages (lab, demo, audit, report, scan) are imported
    when named, not at start-up: `collector collect` should not pay for the agent and the
    lab (about 0.5 s of imports; docs/performance.md)."""

    LAZY = {"lab": "collector.lab.commands:lab_group", "demo": "collector.demo:demo_cmd",
            "audit": "collector.diagnose.commands:audit_cmd", "report": "collector.diagnose.commands:report_cmd",
            "scan": "collector.scan_command:scan_cmd", "probe": "collector.probe_command:probe_cmd",
            "eem": "collector.eem_command:eem_group"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.LAZY})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.LAZY and cmd_name not in self.commands:
            import importlib

            module, _, attr = self.LAZY[cmd_name].partition(":")
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
    from collector.collect import CollectionBundle, collect
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
        # The bundle is written as routers finish, while the others are still being read.
        writing = CollectionBundle(out, inv)
        try:
            with SessionPool(KnownHosts.default(), max_sessions=workers, keep_open=False) as pool, progress as bar:
                run = collect(selected, command_list, pool=pool, registry=default_registry(), workers=workers,
                              on_host_done=lambda o: (bar.advance(o), writing.add(o)))
        except BaseException:
            writing.abandon()
            raise
        bundle = writing.seal(run)

    if as_json:
        from collector.redact import redact_data

        secrets = inv.secret_values()  # stdout is often piped to a file: same redaction as the bundle
        memo = writing.redaction_memo  # the bundle redacted these texts already: each is redacted once
        for outcome in run.outcomes:
            for r in outcome.results:
                row = {"host": r.host, "command": r.command, "raw": r.raw, "parsed": r.parsed,
                       "error": r.error, "seconds": round(r.seconds, 4)}
                click.echo(json.dumps(redact_data(row, secrets, memo=memo), default=str))
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


def _host_port(text: str | None, option: str = "--syslog") -> tuple[str, int] | None:
    if not text:
        return None
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"{option} wants HOST:PORT, not {text!r}")
    return host.strip("[]"), int(port)


def _default_playbook() -> Path:
    from collector.resources import playbooks_dir

    return playbooks_dir() / "invalid-spi.yaml"


@cli.command("watch")
@_inventory_option
@click.option("--playbook", type=click.Path(path_type=Path), default=None, help="Default: the shipped invalid-spi.yaml.")
@click.option("--once", is_flag=True, help="One pass and exit (for cron); state carries over to the next run.")
@click.option("--syslog", "syslog_at", metavar="HOST:PORT", help="Also receive syslog on this UDP address.")
@_state_option
@click.option("--out", type=click.Path(path_type=Path), default=Path("bundles"), show_default=True, help="Bundle root folder.")
@click.option("--dry-run", is_flag=True, help="Print the per-router command plan (do and undo); change nothing.")
@click.option("--workers", default=20, show_default=True, type=click.IntRange(1, 500))
@click.option("--max-seconds", type=float, default=None, hidden=True)
@click.option("--metrics", "metrics_at", metavar="HOST:PORT", help="Serve Prometheus metrics on this address.")
@click.option("--broker", metavar="redis://HOST:PORT/N", default=None,
              help="Correlator for several sites: send each router's work to its site's `collector worker`.")
def watch_cmd(inventory_path, playbook, once, syslog_at, state_dir, out, dry_run, workers, max_seconds,
              metrics_at, broker) -> None:
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
    observers = None
    if metrics_at:
        from collector.metrics import serve_metrics

        where = _host_port(metrics_at, "--metrics")
        try:
            observers = serve_metrics(where[0], where[1], window_seconds=book.arm_window.total_seconds())
        except OSError as exc:
            raise UserError(f"--metrics {metrics_at}: cannot listen there: {exc.strerror or exc}") from None
    options = WatchOptions(state_dir=state_dir, bundle_root=out, once=once, dry_run=dry_run,
                           syslog=_host_port(syslog_at), workers=workers, max_seconds=max_seconds,
                           observers=observers, broker=broker)
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
@click.option("--syslog", "syslog_at", metavar="HOST:PORT",
              help="Receive this site's routers' syslog on this UDP address; hints go to the correlator.")
def worker_cmd(inventory_path, site, broker, playbook, state_dir, concurrency, logins_per_second, login_burst,
               max_armed, syslog_at) -> None:
    """Serve one site's queue: SSH to its routers, poll, arm, capture, disarm, collect."""
    from collector.agent import AgentBusy
    from collector.errors import UserInputError
    from collector.playbook import load_playbook

    inv = _load_inventory(inventory_path)
    _check_broker(broker)
    if not any(h.site == site for h in inv.hosts.values()):
        raise UserError(f"{inventory_path}: no host has site {site!r}")
    from collector.scaleout.site import run_worker

    book = load_playbook(playbook or _default_playbook())
    try:
        run_worker(site, broker, inv, book, state_dir or Path("state") / f"site-{site}", concurrency=concurrency,
                   logins_per_second=logins_per_second, login_burst=login_burst, max_armed=max_armed,
                   syslog=_host_port(syslog_at))
    except (AgentBusy, UserInputError) as exc:
        raise UserError(str(exc)) from None


@cli.command("disarm")
@_inventory_option
@click.option("--hosts", help="Comma-separated host names.")
@click.option("--all", "all_hosts", is_flag=True, help="Every router of the inventory.")
@_state_option
@click.option("--playbook", type=click.Path(path_type=Path), default=None)
@click.option("--from-routers", is_flag=True,
              help="Ignore the state store: restore each router from the tool's own dead-man applets on it.")
@click.option("--workers", default=20, show_default=True, type=click.IntRange(1, 500), help="Routers talked to at once.")
@click.option("--broker", metavar="redis://HOST:PORT/N", default=None,
              help="Disarm through each router's site worker (it holds the router's step ledger).")
def disarm_cmd(inventory_path, hosts, all_hosts, state_dir, playbook, from_routers, workers, broker) -> None:
    """Emergency undo: the recorded undo steps when the state store is usable, then (or,
    without a usable store, only) a restore from the tool's COLLECTOR_DEADMAN_* applets on
    each router; says per router what it restored and what it could not."""
    from collector.errors import StateStoreError
    from collector.hostkeys import KnownHosts
    from collector.respond.sweep import sweep_router, sweep_routers
    from collector.sessions import SessionError, SessionPool
    from collector.state import STATE_FILE, open_state_store

    if not hosts and not all_hosts:
        raise UserError("say which routers: --hosts a,b or --all")
    inv = _load_inventory(inventory_path)
    selected = list(inv.hosts.values()) if all_hosts else _select_hosts(inv, hosts, None, None)
    if not selected:
        raise UserError("no host matches the selection")
    store = None
    if not from_routers:
        try:  # never create one: a missing store means "ask the routers"
            store = open_state_store(state_dir / STATE_FILE, create=False)
        except StateStoreError as exc:
            click.echo(f"collector: state store not usable ({exc}); restoring from the routers' own applets", err=True)
    failed = 0
    if broker:
        _check_broker(broker)
        from collector.playbook import load_playbook
        from collector.scaleout.remote import RemoteResponder, SiteClient

        client = SiteClient(broker)
        try:
            remote = RemoteResponder(playbook=load_playbook(playbook or _default_playbook()), store=None, sessions=None, registry=None, client=client)
            for host in selected:
                result = remote.emergency_disarm(host)
                failed += not result.clean
                click.echo(f"{host.name}: {result.summary()}")
        finally:
            client.close()
        sys.exit(EXIT_PARTIAL if failed else EXIT_OK)
    with SessionPool(KnownHosts.default(), max_sessions=workers) as pool:
        if store is None:
            results = sweep_routers(pool, selected, workers=workers)
            for result in results:
                failed += not result.clean
                click.echo(f"{result.router}: {result.line()}")
        else:
            from collector.parsing import default_registry
            from collector.playbook import load_playbook
            from collector.respond.responder import Responder

            book = load_playbook(playbook or _default_playbook())
            with store:
                responder = Responder(playbook=book, store=store, sessions=pool, registry=default_registry())
                for host in selected:
                    undone = responder.disarm(host, verify=False)
                    recorded = "nothing armed" if undone.nothing_armed else (
                        f"incomplete: {undone.error}" if undone.error else "undone")
                    try:  # then whatever the store did not know: the applets still on the router
                        with pool.session(host) as session:
                            result = sweep_router(session, host.name)
                    except SessionError as exc:
                        from collector.respond.sweep import SweepResult

                        result = SweepResult(host.name, error=exc.reason)
                    failed += not result.clean
                    click.echo(f"{host.name}: recorded steps: {recorded}; {result.line()}")
    sys.exit(EXIT_PARTIAL if failed else EXIT_OK)


@cli.command("incidents")
@_state_option
@click.option("--json", "as_json", is_flag=True)
def incidents_cmd(state_dir, as_json) -> None:
    """List incidents with their state and bundle path."""
    from collector.state import STATE_FILE, open_state_store

    if not (state_dir / STATE_FILE).exists():
        raise UserError(f"{state_dir}: no state here yet (run `collector watch` first)")
    with open_state_store(state_dir / STATE_FILE, create=False) as store:
        rows = [{"incident": r.incident_id, "state": r.state, "flow": r.key, "routers": list(r.routers),
                 "created": r.created_at.isoformat(), "updated": r.updated_at.isoformat(),
                 "reason": r.reason, "bundle": r.bundle_path, "armed_late": r.armed_late,
                 "armed_at": r.armed_at.isoformat() if r.armed_at else None,
                 "work": [w.to_json() for w in store.work(r.incident_id)]} for r in store.incidents()]
        # Lines from sources that are no inventory router and no configured peer: never armed.
        unknown = [{"incident": None, "state": "unknown-source", "flow": None, "routers": [u["router"]],
                    "created": u["first_seen"], "updated": u["last_seen"], "reason": u["reason"], "bundle": None,
                    "src": u["src"], "lines": u["lines"]} for u in store.unknown_sources()]
    if as_json:
        click.echo(json.dumps(rows + unknown, indent=2))
        return
    for r in rows:
        click.echo(f"{r['created']}  {r['state']:<12} {r['flow']}  {r['bundle'] or '-'}  {r['reason']}")
        for w in r["work"]:  # with --broker: which site's worker did each step
            click.echo(f"    {w['at']}  {w['router']} {w['action']}: site {w['site']} "
                       f"({w['worker'] or 'no worker answered'}): {w['detail']}")
    if unknown:
        click.echo("\nUnknown sources (never armed):")
        for u in unknown:
            click.echo(f"{u['updated']}  {u['routers'][0]}  srcaddr {u['src']}  {u['lines']} line(s)  {u['reason']}")


def main() -> None:
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
    except _user_errors() as exc:
        click.echo(f"collector: error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        click.echo("collector: interrupted", err=True)
        sys.exit(130)
