"""`collector probe HOST [--self-test]` against the lab over SSH: what it reports, that the
read-only probe changes nothing, that the self-test leaves the router as it found it (an
operator's debug included), and that the saved transcript holds no secret."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from netmiko import ConnectHandler

from collector.lab.runner import RunningLab, running_lab
from tests.e2e.test_agent_modes import cli

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
AAA_LINES = ["aaa authorization commands 15 default group tacacs+"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[RunningLab]:
    # realism "all": long hostnames, an operator's debug and condition on hub2, a leftover condition on spoke3
    with running_lab(routers=6, realism="all", state_dir=tmp_path_factory.mktemp("lab")) as running:
        yield running


def router_view(lab: RunningLab, router: str) -> dict[str, str]:
    """What an engineer would compare before and after: config, debugs, conditions."""
    with ConnectHandler(**lab.connect_params(router)) as conn:
        conn.enable()
        config = conn.send_command("show running-config")
        # from `version` on: above it IOS prints the size and `! Last configuration change at ...`,
        # which any configuration command changes (re-entering the same line too)
        return {"config": config[config.index("\nversion "):],
                "debugging": conn.send_command("show debugging"),
                "conditions": conn.send_command("show crypto debug-condition")}


def probe(lab: RunningLab, router: str, tmp_path: Path, *extra: str) -> tuple[int, list[dict], Path]:
    done = cli("probe", router, "-i", str(lab.inventory_path), "--out", str(tmp_path / "probes"), "--json", *extra,
               cwd=tmp_path, env={"COLLECTOR_STATE": str(tmp_path / "state"), "PATH": "/usr/bin:/bin",
                                "PYTHONPATH": str(ROOT)})  # this tree's collector, not another install
    assert "Traceback" not in done.stderr, done.stderr
    findings = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    folders = sorted((tmp_path / "probes").glob("*_probe_*"))
    assert folders, done.stderr
    return done.returncode, findings, folders[-1]


def texts(findings: list[dict], topic: str) -> list[str]:
    return [f"{f['verdict']}: {f['text']}" for f in findings if f["topic"] == topic]


def test_read_only_probe_of_a_63_character_hostname_changes_nothing_and_saves_a_redacted_transcript(lab, tmp_path):
    router = "spoke4"
    hostname = lab.fleet.routers[router].hostname
    assert len(hostname) == 63
    before = router_view(lab, router)
    code, findings, folder = probe(lab, router, tmp_path)
    assert code == 0
    assert texts(findings, "prompt") == [
        f"ok: hostname `{hostname}`, 63 characters (longer than netmiko's 16-character base prompt; configuration "
        f"mode shows `{hostname[:20]}(config)#`); prompt `{hostname}#`"]
    assert any(t.startswith("ok: ") and "vty lines free" in t for t in texts(findings, "vty"))
    assert any("uptime stamps" in t for t in texts(findings, "timestamps"))  # spoke4's style under realism all
    assert any("discriminator NOFLAP" in t for t in texts(findings, "discriminator"))
    assert router_view(lab, router) == before
    transcript = (folder / "transcript.txt").read_text()
    assert {line.split("] ", 1)[0].split(" [")[1] for line in transcript.splitlines() if line.startswith("=== ")} \
        == {"read"}
    # secrets: the enable secret and user hashes of the running-config, and the inventory's credentials
    model = lab.fleet.routers[router]
    assert "enable secret 5 <removed>" in transcript and "username lab privilege 15 secret 5 <removed>" in transcript
    for secret in (model.password, model.enable_secret, model.spec.secrets.enable_hash, model.spec.secrets.lab_hash):
        for path in folder.rglob("*"):
            if path.is_file():
                assert secret not in path.read_text(), (secret, path)


def test_self_test_leaves_a_clean_router_exactly_as_it_was(lab, tmp_path):
    router = "spoke1"
    before = router_view(lab, router)
    code, findings, folder = probe(lab, router, tmp_path, "--self-test")
    assert code == 0, findings
    verdicts = {f["topic"]: [] for f in findings}
    for f in findings:
        verdicts[f["topic"]].append(f["verdict"])
    for topic in ("condition", "undebug", "resize", "config-prompt", "clean-up"):
        assert verdicts.get(topic) and set(verdicts[topic]) == {"ok"}, (topic, texts(findings, topic))
    armed = next(f for f in findings if f["topic"] == "condition" and "is listed while on" in f["text"])
    assert "203.0.113.254" in armed["quoted"]  # the exact `show crypto debug-condition` text, kept
    assert router_view(lab, router) == before
    assert (folder / "show_logging_before_resize.txt").read_text().count("\n") > 10
    transcript = (folder / "transcript.txt").read_text()
    assert "[exec] undebug all" in transcript and "[config] logging buffered" in transcript


def test_self_test_with_an_operators_debug_on_refuses_undebug_all_and_leaves_it_on(lab, tmp_path):
    router = "hub2"  # `debug crypto ipsec` and a peer condition of someone else's
    before = router_view(lab, router)
    assert "Crypto IPSEC debugging is on" in before["debugging"]
    code, findings, folder = probe(lab, router, tmp_path, "--self-test")
    assert code == 0, findings
    undebug = texts(findings, "undebug")
    assert len(undebug) == 1 and undebug[0].startswith("note: `undebug all` not run: it would switch off debugs "
                                                       "this probe did not set (debug ipsec, condition ")
    assert "undebug all" not in (folder / "transcript.txt").read_text()
    assert texts(findings, "clean-up") == [
        "ok: the router is as before the self-test: `show debugging`, `show crypto debug-condition` and the "
        "`logging buffered` lines read exactly as before"]
    after = router_view(lab, router)
    assert after == before and "Crypto IPSEC debugging is on" in after["debugging"]


def test_probe_under_aaa_command_authorization_reports_it_and_a_refused_condition_arms_nothing(lab, tmp_path):
    router = "spoke2"
    lab.control.config(router, AAA_LINES)
    user = lab.connect_params(router)["username"]
    lab.control.fault(router, tacacs={user: {"deny": ["debug crypto condition"]}})
    try:
        before = router_view(lab, router)
        code, findings, _folder = probe(lab, router, tmp_path, "--self-test")
        assert code == 0, findings
        aaa = [f for f in findings if f["topic"] == "aaa"]
        assert aaa[0]["verdict"] == "note" and aaa[0]["quoted"] == AAA_LINES
        # whether the applet could run is said: spoke2 is IOS-XE, EEM 4.00 (`show event manager version`)
        assert texts(findings, "eem") == ["ok: EEM 4.0: the applet can carry `authorization bypass`"]
        refused = texts(findings, "condition")
        assert refused and refused[0].startswith("differs: refused: ") and "Command authorization failed" in refused[0]
        assert any(t.startswith("ok: the router is as before") for t in texts(findings, "clean-up"))
        assert router_view(lab, router) == before
        assert lab.control.state(router)["debug"]["peers"] == before_peers(before)
    finally:
        lab.control.fault(router, tacacs=None)
        lab.control.config(router, ["no aaa authorization commands 15 default"])


def before_peers(view: dict[str, str]) -> list[str]:
    from collector.respond.debugstate import parse_debug_state

    return sorted(parse_debug_state(view["debugging"], view["conditions"]).peer_conditions)
