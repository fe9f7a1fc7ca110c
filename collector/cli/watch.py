"""`collector watch` (the agent) and `collector worker` (one site's queue with --broker)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from collector.cli.common import (
    UserError,
    check_broker,
    default_playbook,
    host_port,
    inventory_option,
    load_inventory,
    require_sites,
    state_option,
)


@click.command("watch")
@inventory_option
@click.option("--playbook", type=click.Path(path_type=Path), default=None, help="Default: the shipped invalid-spi.yaml.")
@click.option("--once", is_flag=True, help="One pass and exit (for cron); state carries over to the next run.")
@click.option("--syslog", "syslog_at", metavar="HOST:PORT", help="Also receive syslog on this UDP address.")
@state_option
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

    from collector.allocator import limit_retained_memory

    limit_retained_memory()  # before any thread: freed router outputs go back to the system
    from collector.agent import AgentBusy, install_signal_handlers
    from collector.playbook import load_playbook
    from collector.watch import WatchOptions, run_daemon, run_once

    book = load_playbook(playbook or default_playbook())
    if not book.is_watch:
        raise UserError(f"{playbook}: playbook {book.name} has no trigger; use `collector collect --playbook`")
    inv = load_inventory(inventory_path)
    if broker:
        check_broker(broker)
        if dry_run:
            raise UserError("--dry-run is not available with --broker: run it on the site's jump host")
        require_sites(inventory_path, inv.hosts.values())
    observers = None
    if metrics_at:
        from collector.metrics import serve_metrics

        where = host_port(metrics_at, "--metrics")
        try:
            observers = serve_metrics(where[0], where[1], window_seconds=book.arm_window.total_seconds())
        except OSError as exc:
            raise UserError(f"--metrics {metrics_at}: cannot listen there: {exc.strerror or exc}") from None
    options = WatchOptions(state_dir=state_dir, bundle_root=out, once=once, dry_run=dry_run,
                           syslog=host_port(syslog_at), workers=workers, max_seconds=max_seconds,
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


@click.command("worker")
@inventory_option
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
    from collector.allocator import limit_retained_memory

    limit_retained_memory()  # before any thread: freed router outputs go back to the system
    from collector.agent import AgentBusy
    from collector.errors import UserInputError
    from collector.playbook import load_playbook

    inv = load_inventory(inventory_path)
    check_broker(broker)
    if not any(h.site == site for h in inv.hosts.values()):
        raise UserError(f"{inventory_path}: no host has site {site!r}")
    from collector.scaleout.site import run_worker

    book = load_playbook(playbook or default_playbook())
    try:
        run_worker(site, broker, inv, book, state_dir or Path("state") / f"site-{site}", concurrency=concurrency,
                   logins_per_second=logins_per_second, login_burst=login_burst, max_armed=max_armed,
                   syslog=host_port(syslog_at))
    except (AgentBusy, UserInputError) as exc:
        raise UserError(str(exc)) from None
