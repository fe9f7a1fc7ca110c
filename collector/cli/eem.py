"""`collector eem render`: the command-line face of `collector.respond.eem_render`.

Reads the inventory (platforms, the addresses the two ends know each other by) and the
playbook, and the routers' logging as the operator saved it; prints or writes the applets.
Nothing here connects to a router.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Address, ip_address
from pathlib import Path

import click

from collector.cli.common import inventory_option
from collector.errors import UserInputError

_STATE_HELP = ("{role}'s logging before pasting: a file with the output of `show logging | include [Ll]og` "
               "and `show running-config | include ^logging buffered`; the applets change logging for the "
               "debugs and restore exactly this.")
_DEBUGS_HELP = ("{role}'s `show debugging` (and `show crypto debug-condition`) before pasting: debugs and "
                "conditions already on are left out of the applets, so their disarm leaves them on.")
_HEADER_LINES = ("Console logging:", "Monitor logging:", "Buffer logging:")
_BUFFERED_LINE = re.compile(r"^\s*(?:no )?logging buffered\b.*$", re.M)


def _address(text: str, what: str) -> IPv4Address:
    try:
        address = ip_address(text.strip())
    except ValueError:
        raise UserInputError(f"{what} {text!r} is not an IP address") from None
    if not isinstance(address, IPv4Address):
        raise UserInputError(f"{what} {text}: only IPv4 flows can be rendered (the IPv6 form of the "
                             "invalid-SPI line is not known)")
    return address


def _peer(inventory, name: str, given: str | None, option: str) -> IPv4Address:
    """The address given, or else the first of the host's inventory `addresses`."""
    if given is not None:
        return _address(given, option)
    host = inventory.hosts[name]
    if not host.addresses:
        raise UserInputError(f"{name} has no `addresses` in the inventory: give {option}")
    return _address(host.addresses[0], f"{name}'s first inventory address (give {option} to choose another)")


def _logging(path: Path | None, keep: bool, option: str):
    from collector.respond.facts import parse_logging_settings
    from collector.respond.plan import LoggingSettings, PlanError, check_buffered_config

    if path is None:
        if keep:
            return None
        raise UserInputError(f"give {option} FILE (the router's logging, restored by the disarm) or --keep-logging")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UserInputError(f"{option} {path}: {exc.strerror or exc}") from None
    missing = [line for line in _HEADER_LINES if line not in text]
    if missing:
        raise UserInputError(f"{option} {path}: no `{missing[0]}` line; save `show logging | include [Ll]og` there")
    settings = parse_logging_settings(text)
    try:
        lines = tuple(check_buffered_config(m.group(0)) for m in _BUFFERED_LINE.finditer(text))
        return LoggingSettings(settings.console_level, settings.monitor_level, settings.buffered_level,
                               settings.buffered_size, lines)
    except PlanError as exc:
        raise UserInputError(f"{option} {path}: {exc}") from None


def _debugs(path: Path | None, option: str):
    """The router's debug state as saved before pasting; None when not given."""
    if path is None:
        return None
    from collector.respond.debugstate import parse_debug_state

    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UserInputError(f"{option} {path}: {exc.strerror or exc}") from None
    state = parse_debug_state(text)
    if state.unknown_lines and not (state.crypto_lines or state.other_debugs or state.conditional_debug is not None):
        raise UserInputError(f"{option} {path}: not `show debugging` output ({state.unknown_lines[0][:60]!r}); save "
                             "the router's `show debugging` there")
    return state


def _spi(text: str | None) -> int | None:
    if text is None:
        return None
    from collector.playbook import validate_field

    try:
        return int(validate_field("hex32", text.strip()))
    except ValueError:
        raise UserInputError(f"--spi {text!r}: give the SPI in hex as the log prints it (0xB761863E)") from None


@click.group("eem")
def eem_group() -> None:
    """On-box EEM applets for sites where no agent may log in (Cisco note 116005)."""


@eem_group.command("render")
@click.option("--receiver", required=True, help="Inventory name of the router that logs RECVD_PKT_INV_SPI.")
@click.option("--sender", required=True, help="Inventory name of the peer that encrypts with the stale SA.")
@inventory_option(help="Inventory: platforms and addresses of the two routers.")
@click.option("--playbook", type=click.Path(path_type=Path), default=None, help="Default: the shipped invalid-spi.yaml.")
@click.option("--sender-address", help="The sender as the receiver logs it (srcaddr). Default: its first inventory address.")
@click.option("--receiver-address", help="The receiver as the sender knows it (its peer). Default: its first "
              "inventory address.")
@click.option("--spi", help="Capture only on this SPI (hex, as logged). Default: any SPI from the sender.")
@click.option("--ike", type=click.Choice(["isakmp", "ikev2", "both"]), default="both", show_default=True,
              help="IKE version of the tunnel: which IKE debugs to arm.")
@click.option("--disarm-after", default="24h", show_default=True,
              help="The countdown: how long the debugs stay armed at most (10m .. 7 days).")
@click.option("--receiver-state", type=click.Path(path_type=Path, dir_okay=False), help=_STATE_HELP.format(role="The receiver"))
@click.option("--sender-state", type=click.Path(path_type=Path, dir_okay=False), help=_STATE_HELP.format(role="The sender"))
@click.option("--receiver-debugs", type=click.Path(path_type=Path, dir_okay=False), help=_DEBUGS_HELP.format(role="The receiver"))
@click.option("--sender-debugs", type=click.Path(path_type=Path, dir_okay=False), help=_DEBUGS_HELP.format(role="The sender"))
@click.option("--keep-logging", is_flag=True, help="Leave logging alone on a router whose --*-state is not given.")
@click.option("--authorization-bypass", is_flag=True,
              help="Put `authorization bypass` on the applets (AAA command authorization; EEM 3.1 and later).")
@click.option("--cli-username", help="Render `event manager session cli username NAME` (global: every applet runs as NAME).")
@click.option("--filesystem", default="flash:", show_default=True, help="Where the capture file goes (bootflash: on some).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Write one file per router (ROUTER.eem.txt) here instead of printing.")
def render_cmd(receiver, sender, inventory_path, playbook, sender_address, receiver_address, spi, ike, disarm_after,
               receiver_state, sender_state, receiver_debugs, sender_debugs, keep_logging, authorization_bypass,
               cli_username, filesystem, out_dir) -> None:
    """Print the EEM applets for both ends of one flow: peer-conditional debugs armed
    ahead, a capture into a flash file when the flow repeats, a countdown that disarms."""
    from collector.inventory import load_inventory
    from collector.playbook import load_playbook, parse_duration
    from collector.resources import playbooks_dir
    from collector.respond.eem_render import EemOptions, EemRouter, render_applets

    try:
        window = parse_duration(disarm_after)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--disarm-after") from None
    inventory = load_inventory(inventory_path, resolve_credentials=False)
    for name, option in ((receiver, "--receiver"), (sender, "--sender")):
        if name not in inventory.hosts:
            raise UserInputError(f"{option} {name!r}: no such host in {inventory_path}")
    book = load_playbook(playbook or playbooks_dir() / "invalid-spi.yaml")
    options = EemOptions(
        disarm_after=window,
        spi=_spi(spi),
        ike=("isakmp", "ikev2") if ike == "both" else (ike,),
        authorization_bypass=authorization_bypass,
        cli_username=cli_username,
        filesystem=filesystem,
    )
    rx = EemRouter(receiver, inventory.hosts[receiver].platform, _peer(inventory, sender, sender_address,
                   "--sender-address"), _logging(receiver_state, keep_logging, "--receiver-state"),
                   _debugs(receiver_debugs, "--receiver-debugs"))
    tx = EemRouter(sender, inventory.hosts[sender].platform, _peer(inventory, receiver, receiver_address,
                   "--receiver-address"), _logging(sender_state, keep_logging, "--sender-state"),
                   _debugs(sender_debugs, "--sender-debugs"))
    rendered = render_applets(book, rx, tx, options)
    if out_dir is None:
        click.echo("\n".join(r.text() for r in rendered), nl=False)
        return
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for router in rendered:
            path = out_dir / f"{router.name}.eem.txt"
            path.write_text(router.text(), encoding="utf-8")
            click.echo(f"{router.name} ({router.role}): {path}", err=True)
    except OSError as exc:
        raise UserInputError(f"--out {out_dir}: {exc.strerror or exc}") from None
