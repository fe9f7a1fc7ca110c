"""`collector probe HOST`: the command-line face of `collector.probe`."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import click

from collector.cli.common import inventory_option


@click.command("probe")
@click.argument("host")
@inventory_option
@click.option("--self-test", is_flag=True,
              help="Also arm and remove a debug condition on an unused documentation address, try `undebug all` "
                   "(only when no one else's debug is on) and a buffer resize, undo all of it and verify.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("probes"), show_default=True,
              help="Where the redacted transcript and findings are saved.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON lines.")
def probe_cmd(host: str, inventory_path: Path, self_test: bool, out: Path, as_json: bool) -> None:
    """Check, read-only, what the agent assumes about one router, and save the transcript."""
    from collector.bundle import BundleWriter, slug
    from collector.hostkeys import KnownHosts
    from collector.inventory import load_inventory
    from collector.probe import Transcript, run_probe
    from collector.sessions import SessionError, SessionPool

    inventory = load_inventory(inventory_path)
    target = inventory.select(hosts=[host])[0]  # an unknown name: one line, exit 2
    started = datetime.now(timezone.utc)
    with SessionPool(KnownHosts.default(), max_sessions=2, keep_open=False) as pool:
        try:
            with pool.session(target) as session:
                transcript = Transcript(session)
                try:
                    result = run_probe(transcript, self_test=self_test, reopen=lambda: pool.session(target))
                except SessionError as exc:
                    result = None
                    failure = exc.reason
        except SessionError as exc:
            click.echo(f"collector: {host}: {exc.reason}", err=True)
            sys.exit(1)
    writer = BundleWriter(out, f"{started.strftime('%Y%m%dT%H%M%SZ')}_probe_{slug(host)}",
                          secrets=inventory.secret_values())
    if result is None:  # the read-only part failed: keep what was said, say so
        writer.write_text("transcript.txt", transcript.text())
        bundle = writer.finish({"kind": "probe", "host": host, "self_test": self_test,
                                "started": started.isoformat(), "error": failure}, tarball=False)
        click.echo(f"collector: {host}: {failure}", err=True)
        click.echo(f"transcript: {bundle}", err=True)
        sys.exit(1)
    writer.write_text("transcript.txt", result.transcript_text())
    writer.write_json("findings.json", [f.as_dict() for f in result.findings])
    if result.saved_log is not None:
        writer.write_text("show_logging_before_resize.txt", result.saved_log)
    bundle = writer.finish({"kind": "probe", "host": host, "self_test": self_test, "started": started.isoformat(),
                            "worst": result.worst}, tarball=False)
    from collector.redact import redact_data

    secrets = inventory.secret_values()
    for finding in result.findings:  # the same redaction as the saved files
        row = redact_data(finding.as_dict(), secrets)
        if as_json:
            click.echo(json.dumps(row))
            continue
        click.echo(f"[{row['verdict']:<7}] {row['topic']}: {row['text']}")
        for line in row["quoted"]:
            click.echo(f"            | {line}")
    click.echo(f"transcript: {bundle}", err=True)
    unclean = [f for f in result.findings if f.topic == "clean-up" and f.verdict != "ok"]
    sys.exit(1 if unclean else 0)
