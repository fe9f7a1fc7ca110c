"""`collector audit` and `collector report`: the diagnosis faces of the CLI.

`audit_cmd` and `report_cmd` are mounted by the main CLI. As everywhere in the CLI: a user
mistake (bad inventory, unknown host, not a bundle) is one line on stderr and exit 2;
`audit` exits 1 when some routers could not be read, 0 when all were.

`collector report BUNDLE_DIR` never touches the sealed bundle: by default it writes
`<BUNDLE_DIR>.report.md` and `<BUNDLE_DIR>.report.json` beside the folder (siblings of it
and of its .tar.gz); `--out FILE.md` writes FILE.md and FILE.json instead; `--stdout`
prints. The report inside the bundle (written at capture time) stays as it was sealed.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import click

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2
DEFAULT_INVENTORY = "inventory.yaml"


class CommandError(click.ClickException):
    """A mistake in what the user gave us: one line, exit 2 (as collector.cli.UserError)."""

    exit_code = EXIT_USAGE

    def show(self, file=None) -> None:
        click.echo(f"collector: error: {self.format_message()}", err=True)


def write_file(path: Path, text: str) -> None:
    """Write atomically (a reader never sees half a report); parent folders are created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- audit ------------------------------------------------------------------------------------


def _out_format(path: Path) -> str:
    suffix = path.suffix.lower()
    return "html" if suffix in (".html", ".htm") else "json" if suffix == ".json" else "text"


@click.command("audit")
@click.option("-i", "--inventory", "inventory_path", type=click.Path(path_type=Path),
              default=lambda: os.environ.get("COLLECTOR_INVENTORY", DEFAULT_INVENTORY), show_default=DEFAULT_INVENTORY,
              help="Inventory file (hosts/groups/defaults) or a folder with Nornir hosts.yaml/groups.yaml/defaults.yaml.")
@click.option("--hosts", help="Comma-separated host names (default: all).")
@click.option("--group", help="Only hosts in this group.")
@click.option("--json", "as_json", is_flag=True, help="Print the audit as JSON instead of a table.")
@click.option("--out", type=click.Path(path_type=Path),
              help="Also write the report to FILE: .html = self-contained HTML page, .json = JSON, else text.")
@click.option("--workers", default=20, show_default=True, type=click.IntRange(1, 500), help="Routers talked to at once.")
def audit_cmd(inventory_path: Path, hosts: str | None, group: str | None, as_json: bool, out: Path | None,
              workers: int) -> None:
    """Read-only fleet audit: per router and tunnel, the crypto configuration type, whether
    `crypto isakmp invalid-spi-recovery` applies (Cisco 115801) and is configured, DPD and
    IKE version, with a summary of the tunnels that could use recovery and do not."""
    from collector.diagnose.audit import audit_hosts, render_html, render_text
    from collector.hostkeys import KnownHosts
    from collector.inventory import InventoryError, load_inventory
    from collector.parsing import default_registry
    from collector.sessions import SessionPool
    from collector.yamlfile import YamlError

    if out is not None and out.is_dir():
        raise CommandError(f"--out {out}: is a directory; give a file name (report.html, audit.json, audit.txt)")
    try:
        inventory = load_inventory(inventory_path)
        names = [h.strip() for h in hosts.split(",") if h.strip()] if hosts else None
        selected = inventory.select(hosts=names, group=group)
    except (InventoryError, YamlError) as exc:
        raise CommandError(str(exc)) from None
    if not selected:
        raise CommandError("no host matches the selection")

    with SessionPool(KnownHosts.default(), max_sessions=workers) as pool:
        audit = audit_hosts(selected, pool=pool, registry=default_registry(), workers=workers,
                            inventory=str(inventory_path))

    data = audit.to_dict()
    if out is not None:
        kind = _out_format(out)
        body = (render_html(audit) if kind == "html" else json.dumps(data, indent=2) + "\n" if kind == "json"
                else render_text(audit))
        try:
            write_file(out, body)
        except OSError as exc:
            raise CommandError(f"--out {out}: cannot write: {exc.strerror or exc}") from None
        click.echo(f"report: {out}", err=True)
    click.echo(json.dumps(data, indent=2) if as_json else render_text(audit), nl=as_json)
    summary = audit.summary
    if summary.routers_failed:
        click.echo(f"{len(summary.routers_failed)} of {summary.routers} routers not read: "
                   + ", ".join(summary.routers_failed), err=True)
    sys.exit(EXIT_PARTIAL if audit.failed else EXIT_OK)


# -- report -----------------------------------------------------------------------------------


def default_report_paths(bundle: Path) -> tuple[Path, Path]:
    """`<parent>/<bundle name>.report.md` and `.report.json`: beside the sealed folder."""
    folder = bundle.resolve()
    return folder.parent / f"{folder.name}.report.md", folder.parent / f"{folder.name}.report.json"


def _json_beside(markdown: Path) -> Path:
    return markdown.with_suffix(".json") if markdown.suffix.lower() == ".md" else markdown.with_name(markdown.name + ".json")


@click.command("report")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path),
              help="Write the markdown to FILE (and the JSON to FILE with .json) instead of beside the bundle.")
@click.option("--stdout", "to_stdout", is_flag=True, help="Print the report instead of writing files.")
@click.option("--json", "as_json", is_flag=True, help="With --stdout: print report.json instead of report.md.")
def report_cmd(bundle: Path, out: Path | None, to_stdout: bool, as_json: bool) -> None:
    """Diagnose an existing incident bundle again, offline, from its raw files.

    The sealed bundle is only read. Without --out/--stdout the report is written to
    BUNDLE.report.md and BUNDLE.report.json beside the bundle folder."""
    from collector.diagnose.incident import BundleError, diagnose_bundle

    if to_stdout and out is not None:
        raise CommandError("give either --stdout or --out, not both")
    if as_json and not to_stdout:
        raise CommandError("--json only applies with --stdout (files get both .md and .json)")
    try:
        markdown, data = diagnose_bundle(bundle)
    except BundleError as exc:
        raise CommandError(str(exc)) from None
    text_json = json.dumps(data, indent=2, default=str) + "\n"
    if to_stdout:
        click.echo(text_json if as_json else markdown, nl=False)
        return
    if out is not None:
        md_path, json_path = out, _json_beside(out)
        inside = bundle.resolve()
        for target in (md_path, json_path):
            if target.resolve().is_relative_to(inside):
                raise CommandError(f"--out {out}: inside the bundle; the sealed bundle is never modified")
    else:
        md_path, json_path = default_report_paths(bundle)
    try:
        write_file(md_path, markdown)
        write_file(json_path, text_json)
    except OSError as exc:
        raise CommandError(f"cannot write the report: {exc.strerror or exc} ({exc.filename or md_path})") from None
    click.echo(f"report: {md_path}", err=True)
    click.echo(f"report: {json_path}", err=True)
    click.echo(f"verdict: {data.get('verdict', {}).get('headline', '?')}")
