"""`collector demo`: the face of collector.demo (the agent on the built-in lab)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("demo")
@click.option("--out", type=click.Path(path_type=Path), default=Path("bundles"), show_default=True)
@click.option("--timeout", default=90.0, show_default=True, help="Give up after this many seconds.")
@click.option("--scenario", type=click.Choice(["desync", "dmvpn"]), default="desync", show_default=True,
              help="desync: one tunnel out of sync. dmvpn: two flows into one DMVPN spoke, one over a static "
                   "NHRP map and one over a spoke-to-spoke shortcut, each with its own recovery verdict.")
def demo_cmd(out: Path, timeout: float, scenario: str) -> None:
    """Run the agent against the built-in lab with a desynchronised tunnel."""
    from collector.demo import run_demo

    bundles = run_demo(out, timeout, say=lambda message: click.echo(f"collector: {message}", err=True),
                       demo=scenario)
    if not bundles:
        raise click.ClickException(f"no incident captured within {timeout:.0f}s")
    for bundle in bundles if scenario == "dmvpn" else bundles[-1:]:
        click.echo(str(bundle))
