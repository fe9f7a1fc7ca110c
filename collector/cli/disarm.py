"""`collector disarm`: the emergency undo, from the state store and the routers' own applets."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from collector.cli.common import (
    EXIT_OK,
    EXIT_PARTIAL,
    UserError,
    check_broker,
    default_playbook,
    inventory_option,
    load_inventory,
    select_hosts,
    state_option,
)


@click.command("disarm")
@inventory_option
@click.option("--hosts", help="Comma-separated host names.")
@click.option("--all", "all_hosts", is_flag=True, help="Every router of the inventory.")
@state_option
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
    from collector.respond.sweep import Ownership, sweep_host, sweep_routers
    from collector.sessions import SessionPool
    from collector.state import STATE_FILE, open_state_store

    if not hosts and not all_hosts:
        raise UserError("say which routers: --hosts a,b or --all")
    inv = load_inventory(inventory_path)
    selected = list(inv.hosts.values()) if all_hosts else select_hosts(inv, hosts, None, None)
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
        check_broker(broker)
        from collector.playbook import load_playbook
        from collector.scaleout.remote import RemoteResponder, SiteClient

        client = SiteClient(broker)
        try:
            remote = RemoteResponder(playbook=load_playbook(playbook or default_playbook()), store=None, sessions=None, registry=None, client=client)
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
            from collector.respond.base import Owned
            from collector.respond.responder import Responder

            book = load_playbook(playbook or default_playbook())
            with store:
                responder = Responder(playbook=book, store=store, sessions=pool, registry=default_registry())
                for host in selected:
                    own = Owned(store.armed_steps(host.name))  # the tool's, whether its undo works or not
                    undone = responder.disarm(host, verify=False)
                    recorded = "nothing armed" if undone.nothing_armed else (
                        f"incomplete: {undone.error}" if undone.error else
                        "undone" if undone.clean else "not all undone")
                    # then what the store did not know: the applets still there
                    result = sweep_host(pool, host, Ownership(frozenset(own.debugs), frozenset(own.conditions)))
                    failed += not result.clean or not undone.clean
                    click.echo(f"{host.name}: recorded steps: {recorded}; {result.line()}")
    sys.exit(EXIT_PARTIAL if failed else EXIT_OK)
