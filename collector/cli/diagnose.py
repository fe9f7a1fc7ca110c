"""`collector audit` and `collector report`: the diagnosis faces.

`audit` exits 1 when some routers could not be read, 0 when all were.

`collector report BUNDLE_DIR` never touches the sealed bundle: by default it writes
`<BUNDLE_DIR>.report.md` and `<BUNDLE_DIR>.report.json` beside the folder (siblings of it
and of its .tar.gz); `--out FILE.md` writes FILE.md and FILE.json instead; `--stdout`
prints. The report inside the bundle (written at capture time) stays as it was sealed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from collector.cli.common import EXIT_OK, EXIT_PARTIAL, UserError, inventory_option, load_inventory, select_hosts

# -- audit ------------------------------------------------------------------------------------


def _out_format(path: Path) -> str:
    suffix = path.suffix.lower()
    return "html" if suffix in (".html", ".htm") else "json" if suffix == ".json" else "text"


@click.command("audit")
@inventory_option
@click.option("--hosts", help="Comma-separated host names (default: all).")
@click.option("--group", help="Only hosts in this group.")
@click.option("--json", "as_json", is_flag=True, help="Print the audit as JSON instead of a table.")
@click.option("--out", type=click.Path(path_type=Path),
              help="Also write the report to FILE: .html = self-contained HTML page, .json = JSON, else text.")
@click.option("--workers", default=20, show_default=True, type=click.IntRange(1, 500), help="Routers talked to at once.")
@click.option("--processes", default=0, show_default="0: as collect decides", type=click.IntRange(0, 64),
              help="Processes sharing the routers, as `collect --processes`.")
def audit_cmd(inventory_path: Path, hosts: str | None, group: str | None, as_json: bool, out: Path | None,
              workers: int, processes: int) -> None:
    """Read-only fleet audit: per router and tunnel, the crypto configuration type, whether
    `crypto isakmp invalid-spi-recovery` applies (Cisco 115801) and is configured, DPD and
    IKE version, with a summary of the tunnels that could use recovery and do not."""
    from collector.audit import audit_fleet
    from collector.diagnose.audit import render_html, render_text
    from collector.diagnose.report_files import write_file
    from collector.hostkeys import KnownHosts
    from collector.inventory import InventoryError
    from collector.parsing import default_registry
    from collector.yamlfile import YamlError

    if out is not None and out.is_dir():
        raise UserError(f"--out {out}: is a directory; give a file name (report.html, audit.json, audit.txt)")
    try:
        inventory = load_inventory(inventory_path)
        selected = select_hosts(inventory, hosts, group)
    except (InventoryError, YamlError) as exc:
        raise UserError(str(exc)) from None
    if not selected:
        raise UserError("no host matches the selection")

    audit = audit_fleet(selected, known_hosts=KnownHosts.default(), registry=default_registry(), workers=workers,
                        processes=processes, inventory=str(inventory_path))

    data = audit.to_dict()
    if out is not None:
        kind = _out_format(out)
        body = (render_html(audit) if kind == "html" else json.dumps(data, indent=2) + "\n" if kind == "json"
                else render_text(audit))
        try:
            write_file(out, body)
        except OSError as exc:
            raise UserError(f"--out {out}: cannot write: {exc.strerror or exc}") from None
        click.echo(f"report: {out}", err=True)
    click.echo(json.dumps(data, indent=2) if as_json else render_text(audit), nl=as_json)
    summary = audit.summary
    if summary.routers_failed:
        click.echo(f"{len(summary.routers_failed)} of {summary.routers} routers not read: "
                   + ", ".join(summary.routers_failed), err=True)
    sys.exit(EXIT_PARTIAL if audit.failed else EXIT_OK)


# -- report -----------------------------------------------------------------------------------


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
    from collector.diagnose.report_files import report_paths, write_file

    if to_stdout and out is not None:
        raise UserError("give either --stdout or --out, not both")
    if as_json and not to_stdout:
        raise UserError("--json only applies with --stdout (files get both .md and .json)")
    try:
        markdown, data = diagnose_bundle(bundle)
    except BundleError as exc:
        raise UserError(str(exc)) from None
    text_json = json.dumps(data, indent=2, default=str) + "\n"
    if to_stdout:
        click.echo(text_json if as_json else markdown, nl=False)
        return
    try:
        md_path, json_path = report_paths(bundle, out)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    try:
        write_file(md_path, markdown)
        write_file(json_path, text_json)
    except OSError as exc:
        raise UserError(f"cannot write the report: {exc.strerror or exc} ({exc.filename or md_path})") from None
    click.echo(f"report: {md_path}", err=True)
    click.echo(f"report: {json_path}", err=True)
    click.echo(f"verdict: {data.get('verdict', {}).get('headline', '?')}")
