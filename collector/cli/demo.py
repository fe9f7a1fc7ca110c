"""`collector demo`: the face of collector.demo (the agent on the built-in lab)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("demo")
@click.option("--out", type=click.Path(path_type=Path), default=Path("bundles"), show_default=True)
@click.option("--timeout", default=90.0, show_default=True, help="Give up after this many seconds.")
def demo_cmd(out: Path, timeout: float) -> None:
    """Run the agent against the built-in lab with a desynchronised tunnel."""
    from collector.demo import run_demo

    bundles = run_demo(out, timeout, say=lambda message: click.echo(f"collector: {message}", err=True))
    if not bundles:
        raise click.ClickException(f"no incident captured within {timeout:.0f}s")
    click.echo(str(bundles[-1]))
