"""`collector incidents`: the incidents of the state store, with their state and bundle."""

from __future__ import annotations

import json

import click

from collector.detect.events import Flow
from collector.detect.tracker import decode_key

from collector.cli.common import UserError, state_option


@click.command("incidents")
@state_option
@click.option("--json", "as_json", is_flag=True)
def incidents_cmd(state_dir, as_json) -> None:
    """List incidents with their state and bundle path."""
    from collector.state import STATE_FILE, open_state_store

    if not (state_dir / STATE_FILE).exists():
        raise UserError(f"{state_dir}: no state here yet (run `collector watch` first)")
    with open_state_store(state_dir / STATE_FILE, create=False) as store:
        rows = [{"incident": r.incident_id, "state": r.state, "flow": r.key, "routers": list(r.routers),
                 "created": r.created_at.isoformat(), "updated": r.updated_at.isoformat(),
                 "reason": r.reason, "bundle": r.bundle_path, "armed_late": r.armed_late,
                 "armed_at": r.armed_at.isoformat() if r.armed_at else None,
                 "work": [w.to_json() for w in store.work(r.incident_id)]} for r in store.incidents()]
        # Lines from sources that are no inventory router and no configured peer: never armed.
        unknown = [{"incident": None, "state": "unknown-source", "flow": None, "routers": [u["router"]],
                    "created": u["first_seen"], "updated": u["last_seen"], "reason": u["reason"], "bundle": None,
                    "src": u["src"], "lines": u["lines"]} for u in store.unknown_sources()]
    if as_json:
        click.echo(json.dumps(rows + unknown, indent=2))
        return
    for r in rows:
        click.echo(f"{r['created']}  {r['incident']}  {r['state']:<12} {_flow_text(r['flow'])}  "
                   f"routers {', '.join(r['routers']) or '-'}  bundle {r['bundle'] or '-'}"
                   + (f"  {r['reason']}" if r["reason"] else ""))
        for w in r["work"]:  # with --broker: which site's worker did each step
            click.echo(f"    {w['at']}  {w['router']} {w['action']}: site {w['site']} "
                       f"({w['worker'] or 'no worker answered'}): {w['detail']}")
    if unknown:
        click.echo("\nUnknown sources (never armed):")
        for u in unknown:
            click.echo(f"{u['updated']}  {u['routers'][0]}  srcaddr {u['src']}  {u['lines']} line(s)  {u['reason']}")


def _flow_text(key: str) -> str:
    """`hub1 <- 192.0.2.3 SPI 0xB4251D61 (ESP)`: the receiver, the sender and the SPI."""
    try:
        flow = decode_key(key)
    except (ValueError, KeyError, TypeError):
        return key
    if not isinstance(flow, Flow):
        return key
    return f"{flow.router} <- {flow.src} SPI {flow.spi_hex} ({'ESP' if flow.prot == 50 else 'AH'})"
