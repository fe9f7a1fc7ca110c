"""`collector lab ...`: start, stop and poke the simulated routers.

`lab_group` is mounted by the main CLI as `collector lab`; `python -m collector.lab`
runs it stand-alone. Errors are one line on stderr ("Error: ...", click's form, which the
detached child's log is read for) and exit 1. Running the lab in the background lives in
collector/lab/process.py.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import click
import yaml

from collector.lab.control import LabControlError
from collector.lab.process import running_pid, start_detached, stop_lab
from collector.lab.settings import (
    DEFAULT_BASE_PORT,
    DEFAULT_ROUTERS,
    DEFAULT_STATE_DIR,
    LabError,
    LabSettings,
    control_for,
    load_faults_file,
)
from collector.lab.syslog import NonLoopbackDestination, parse_host_port


def _check_scenarios(specs: tuple[str, ...]) -> None:
    from collector.lab.fleet import parse_scenarios

    try:
        parse_scenarios(list(specs))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@click.group("lab")
def lab_group() -> None:
    """Simulated Cisco routers over real SSH and syslog, for trying the agent without hardware."""


@lab_group.command("up")
@click.option("--routers", "routers", type=click.IntRange(1, 10000), default=DEFAULT_ROUTERS, show_default=True,
              help="Number of simulated routers (above 5,000, serve them from several processes with --serve).")
@click.option("--scenario", "scenarios", multiple=True, metavar="NAME[:COUNT]",
              help="Scenario to stage (repeatable), e.g. desync, desync:3, healthy.")
@click.option("--inventory-out", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the inventory YAML [default: <state-dir>/inventory.yaml].")
@click.option("--base-port", type=click.IntRange(2, 65535), default=DEFAULT_BASE_PORT, show_default=True,
              help="Router i listens on 127.0.0.1:<base-port + i>.")
@click.option("--control-port", type=click.IntRange(1, 65535), help="Control API port [default: base-port - 1].")
@click.option("--syslog-to", metavar="HOST:PORT", help="Also send every router's syslog here (loopback only).")
@click.option("--time-scale", type=click.FloatRange(min=0.0), default=1.0, show_default=True,
              help="Lab seconds per wall second.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the lab (topology, keys, SPIs).")
@click.option("--faults", "faults_file", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML mapping router -> fault fields to start with.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_STATE_DIR,
              show_default=True, help="Pid file, control.json, log and default inventory live here.")
@click.option("--detach", is_flag=True, help="Run in the background; return once the routers accept connections.")
@click.option("--serve", "serve", multiple=True, metavar="PATTERN",
              help="Serve only the routers whose name matches (repeatable, shell style, e.g. 'hub*'): one site "
                   "of a multi-site lab per process. The others are modelled as their tunnels' far ends only.")
def up_command(
    routers: int,
    scenarios: tuple[str, ...],
    inventory_out: Path | None,
    base_port: int,
    control_port: int | None,
    syslog_to: str | None,
    time_scale: float,
    seed: int,
    faults_file: Path | None,
    state_dir: Path,
    detach: bool,
    serve: tuple[str, ...],
) -> None:
    """Start the lab and run until Ctrl-C / SIGTERM (or in the background with --detach)."""
    try:
        target = parse_host_port(syslog_to) if syslog_to else None
    except NonLoopbackDestination as exc:
        raise click.ClickException(f"--syslog-to: {exc}") from None
    _check_scenarios(scenarios)
    try:
        faults = load_faults_file(faults_file) if faults_file else None
    except LabError as exc:
        raise click.ClickException(str(exc)) from None
    if base_port + routers - 1 > 65535:
        raise click.ClickException(f"--base-port {base_port} leaves no room for {routers} routers below 65536")
    running = running_pid(state_dir)
    if running is not None:
        raise click.ClickException(
            f"a lab is already running from {state_dir} (pid {running}); stop it with `collector lab down`"
        )
    settings = LabSettings(
        routers=routers,
        scenarios=scenarios,
        seed=seed,
        time_scale=time_scale,
        base_port=base_port,
        control_port=control_port,
        syslog_to=target,
        state_dir=state_dir,
        inventory_out=inventory_out,
        faults=faults.faults if faults else {},
        faults_where=faults.where if faults else {},
        serve=serve,
    )
    if detach:
        try:
            pid, port = start_detached(settings, faults_file)
        except LabError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            raise click.ClickException(f"cannot start the lab in {state_dir}: {exc}") from None
        click.echo(_summary(settings, port, pid))
        return
    _run_foreground(settings)


def _summary(settings: LabSettings, control_port: int | None, pid: int, served: int | None = None) -> str:
    served = settings.routers if served is None else served
    top = (settings.base_port or 0) + served - 1
    of = f" (of {settings.routers} modelled)" if served != settings.routers else ""
    return (
        f"lab up: {served} routers{of} on 127.0.0.1:{settings.base_port}-{top}, "
        f"control 127.0.0.1:{control_port}, inventory {settings.inventory_path} (pid {pid})"
    )


def _run_foreground(settings: LabSettings) -> None:
    from collector.lab.runner import LabRuntime, serve  # the SSH stack loads only when a lab runs here

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncssh").setLevel(logging.WARNING)

    def ready(runtime: LabRuntime) -> None:
        click.echo(_summary(settings, runtime.control_port, os.getpid(), len(runtime.ports)), err=True)

    try:
        serve(settings, on_ready=ready)
    except (LabError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        pass


@lab_group.command("down")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_STATE_DIR,
              show_default=True)
def down_command(state_dir: Path) -> None:
    """Stop the lab started from STATE_DIR (SIGTERM, wait, remove the pid file)."""
    try:
        pid = stop_lab(state_dir)
    except LabError as exc:
        raise click.ClickException(str(exc)) from None
    if pid is None:
        click.echo(f"lab down: no lab process was running; removed stale files in {state_dir}")
    else:
        click.echo(f"lab down: stopped pid {pid}")


# -- lab ctl ----------------------------------------------------------------------


@lab_group.group("ctl")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_STATE_DIR,
              show_default=True)
@click.pass_context
def ctl_group(ctx: click.Context, state_dir: Path) -> None:
    """Talk to a running lab's control API (prints JSON)."""
    ctx.obj = state_dir


def _ctl(ctx: click.Context, op: str, **args: Any) -> None:
    try:
        with control_for(ctx.obj) as control:
            result = control.call(op, **args)
    except (LabError, LabControlError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot reach the lab control API: {exc}") from None
    click.echo(json.dumps(result, indent=2))


@ctl_group.command("now")
@click.pass_context
def ctl_now(ctx: click.Context) -> None:
    """Print the lab clock."""
    _ctl(ctx, "now")


@ctl_group.command("step")
@click.argument("seconds", type=click.FloatRange(min=0))
@click.pass_context
def ctl_step(ctx: click.Context, seconds: float) -> None:
    """Move the lab clock forward by SECONDS."""
    _ctl(ctx, "step", seconds=seconds)


@ctl_group.command("fault")
@click.argument("router")
@click.argument("assignments", nargs=-1, required=True, metavar="FIELD=VALUE...")
@click.pass_context
def ctl_fault(ctx: click.Context, router: str, assignments: tuple[str, ...]) -> None:
    """Set transport/model faults, e.g. `slow_seconds=2 vty_limit=1 refuse_connections=true`."""
    changes: dict[str, Any] = {}
    for item in assignments:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.ClickException(f"{item!r} is not FIELD=VALUE")
        changes[name] = yaml.safe_load(value) if value else None
    _ctl(ctx, "fault", router=router, set=changes)


@ctl_group.command("reboot")
@click.argument("router")
@click.pass_context
def ctl_reboot(ctx: click.Context, router: str) -> None:
    """Reboot ROUTER (SAs, debugs, log buffer and its SSH sessions are gone)."""
    _ctl(ctx, "reboot", router=router)


@ctl_group.command("state")
@click.argument("router")
@click.pass_context
def ctl_state(ctx: click.Context, router: str) -> None:
    """Debug state, conditions, applets, logging settings and faults of ROUTER."""
    _ctl(ctx, "state", router=router)


@ctl_group.command("pairs")
@click.pass_context
def ctl_pairs(ctx: click.Context) -> None:
    """Tunnels with both ends and their scenarios."""
    _ctl(ctx, "pairs")


@ctl_group.command("routers")
@click.pass_context
def ctl_routers(ctx: click.Context) -> None:
    """Routers with their ports, platforms and syslog sources."""
    _ctl(ctx, "routers")


@ctl_group.command("config")
@click.argument("router")
@click.argument("lines", nargs=-1, required=True)
@click.pass_context
def ctl_config(ctx: click.Context, router: str, lines: tuple[str, ...]) -> None:
    """Apply configuration LINES on ROUTER as if typed in `configure terminal`."""
    _ctl(ctx, "config", router=router, lines=list(lines))


__all__ = ["lab_group"]
