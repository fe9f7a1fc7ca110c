"""What every subcommand shares: exit codes, the one-line user error, `-i`, `--state`,
and the small option checks.

Exit 0 means everything worked, 1 that some routers failed, 2 a user mistake (one line on
stderr, never a traceback). Nothing heavy is imported here: every face imports this.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2
DEFAULT_INVENTORY = "inventory.yaml"


class UserError(click.ClickException):
    """A mistake in what the user gave us: one line, exit 2."""

    exit_code = EXIT_USAGE

    def show(self, file=None) -> None:  # one line, no "Usage:" noise
        click.echo(f"collector: error: {self.format_message()}", err=True)


def user_errors() -> tuple[type[BaseException], ...]:
    """What ends in one line and exit 2: the user-input branch of the error root, and a
    state store that cannot be trusted (the line says what to do)."""
    from collector.errors import StateStoreError, UserInputError
    from collector.inventory import InventoryError
    from collector.playbook import PlaybookError
    from collector.yamlfile import YamlError

    return (UserInputError, StateStoreError, InventoryError, PlaybookError, YamlError)


def _default_inventory() -> str:
    return os.environ.get("COLLECTOR_INVENTORY", DEFAULT_INVENTORY)


def inventory_option(f=None, *, default: bool = True, help: str | None = None):
    """`-i/--inventory`. `default=False`: no inventory unless given (scan works without one)."""
    def decorate(func):
        extra = {"default": _default_inventory, "show_default": DEFAULT_INVENTORY} if default else {}
        return click.option(
            "-i", "--inventory", "inventory_path", type=click.Path(path_type=Path), **extra,
            help=help or "Inventory file (hosts/groups/defaults) or a folder with Nornir "
                         "hosts.yaml/groups.yaml/defaults.yaml.",
        )(func)

    return decorate(f) if f is not None else decorate


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


def state_option(f):
    return click.option(
        "--state", "state_dir", type=click.Path(path_type=Path, readable=False), default=_default_state_dir,
        callback=_checked_state_dir,
        show_default="$COLLECTOR_STATE, else ~/.local/state/collector",
        help="The agent's state folder (state.db, lock file, known_hosts).",
    )(f)


def load_inventory(path: Path, **kwargs):
    from collector.inventory import load_inventory as load

    return load(path, **kwargs)


def select_hosts(inv, hosts: str | None, group: str | None, platform: str | None = None):
    """The hosts named by --hosts a,b / --group / --platform (all when none is given)."""
    names = [h.strip() for h in hosts.split(",") if h.strip()] if hosts else None
    return inv.select(hosts=names, group=group, platform=platform)


def require_sites(inv_path: Path, hosts) -> None:
    """With --broker every router is served by its site's worker: each needs a `site`."""
    missing = sorted(h.name for h in hosts if not h.site)
    if missing:
        raise UserError(f"{inv_path}: with --broker every host needs a `site`; none for: "
                        + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))


def host_port(text: str | None, option: str = "--syslog") -> tuple[str, int] | None:
    if not text:
        return None
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"{option} wants HOST:PORT, not {text!r}")
    return host.strip("[]"), int(port)


def default_playbook() -> Path:
    from collector.resources import playbooks_dir

    return playbooks_dir() / "invalid-spi.yaml"


def check_broker(broker: str) -> None:
    if not broker.startswith(("redis://", "rediss://", "unix://")):
        raise UserError(f"--broker {broker}: expected redis://HOST:PORT/N")
    try:
        import celery  # noqa: F401
        import redis  # noqa: F401
    except ImportError:
        raise UserError("--broker needs the scale extra: pip install 'collector[scale]'") from None
