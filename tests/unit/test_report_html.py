"""report.html: parsed back with html.parser and checked against the diagnosis it was
rendered from (timelines on one axis with clock offsets applied, marks, SA tables, findings)."""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_incident_diagnosis import HUB_LOG, make_result  # noqa: E402  (the diagnosis tests' own fixtures)

from collector.diagnose.incident import diagnose  # noqa: E402
from collector.diagnose.report import timeline_summary  # noqa: E402
from collector.diagnose.report_html import render_bundle_html, render_capture_html, render_html  # noqa: E402
from collector.evidence import write_incident_bundle  # noqa: E402

VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: "Node | None"):
        self.tag, self.attrs, self.parent, self.children, self.text = tag, attrs, parent, [], []

    def all(self, tag: str | None = None, **attrs: str) -> list["Node"]:
        found = []
        for child in self.children:
            if (tag is None or child.tag == tag) and all(child.attrs.get(k.replace("_", "-")) == v
                                                        for k, v in attrs.items()):
                found.append(child)
            found += child.all(tag, **attrs)
        return found

    def get_text(self) -> str:
        return "".join(self.text) + "".join(c.get_text() for c in self.children)


class Tree(HTMLParser):
    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.root = self.current = Node("#root", {}, None)
        self.tags: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        node = Node(tag, dict(attrs), self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)
        self.current.children.append(Node(tag, dict(attrs), self.current))

    def handle_endtag(self, tag):
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data):
        self.current.text.append(data)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


CAPTURED = datetime(2019, 9, 2, 13, 30, 0, tzinfo=timezone.utc)
ACTIONS = (
    {"router": "hub", "do": ["debug crypto isakmp"], "undo": ["no debug crypto isakmp"], "status": "applied",
     "at": "2019-09-02T13:27:30+00:00"},
    {"router": "branch", "do": ["debug crypto isakmp"], "undo": ["no debug crypto isakmp"], "status": "applied",
     "at": "2019-09-02T13:27:31+00:00"},
    {"router": "hub", "do": ["debug crypto isakmp"], "undo": ["no debug crypto isakmp"], "status": "undone",
     "at": "2019-09-02T13:30:05+00:00"},
    {"router": "branch", "do": ["debug crypto isakmp"], "undo": ["no debug crypto isakmp"], "status": "undone",
     "at": "2019-09-02T13:30:07+00:00"},
)


def result_with_offsets(branch_offset: float = 30.0, hub_log: str = HUB_LOG):
    """The branch's clock runs 30 s ahead of the agent's: its lines move 30 s earlier."""
    result = make_result(actions=ACTIONS, hub_log=hub_log)
    captures = tuple(replace(c, clock_offset=branch_offset if c.router == "branch" else 0.0) for c in result.captures)
    return replace(result, captures=captures)


@pytest.fixture
def page():
    result = result_with_offsets()
    d = diagnose(result)
    text = render_html(d, actions=result.actions, clock_offsets={"hub": 0.0, "branch": 30.0})
    return d, Tree(text), text


def test_timelines_share_one_axis_with_clock_offsets_applied(page):
    d, tree, _ = page
    svg = tree.root.all("svg", id="timeline")[0]
    lanes = svg.all("g", **{"class": "lane"})
    assert [(g.attrs["data-router"], g.attrs["data-role"], g.attrs["data-clock-offset"]) for g in lanes] == [
        ("hub", "receiver", "0.0"), ("branch", "sender", "30.0")]
    events = svg.all("circle", **{"class": "event"})
    # one point per timeline row, each at the row's agent time
    assert sorted(c.attrs["data-time"] for c in events) == sorted(
        at(r["agent_time"]).replace(tzinfo=timezone.utc).isoformat() for r in d.timeline)
    # the branch's 13:27:40 line is drawn at 13:27:10 on the common axis, left of the hub's
    # first invalid-SPI line at 13:27:57
    branch = [c for c in events if c.attrs["data-router"] == "branch"]
    first = min(branch, key=lambda c: c.attrs["data-time"])
    assert first.attrs["data-time"] == "2019-09-02T13:27:10+00:00"
    assert first.attrs["data-device-time"] == "Sep  2 13:27:40.000"
    hub_inv = [c for c in events if c.attrs["data-router"] == "hub" and c.attrs["data-kind"] == "invalid-spi"]
    assert len(hub_inv) == timeline_summary(d.timeline)["routers"]["hub"]["invalid_spi"] == 2
    assert float(first.attrs["cx"]) < min(float(c.attrs["cx"]) for c in hub_inv)
    # x grows with time everywhere (one axis for both lanes)
    ordered = sorted(events + svg.all("g", **{"class": "mark"}), key=lambda n: n.attrs["data-time"])
    xs = [float(n.attrs["cx"]) if n.tag == "circle" else float(n.all("line")[0].attrs["x1"]) for n in ordered]
    assert xs == sorted(xs)


def test_arm_capture_and_disarm_marks(page):
    _, tree, _ = page
    marks = {(m.attrs["data-kind"], m.attrs["data-router"]): m.attrs["data-time"]
             for m in tree.root.all("g", **{"class": "mark"})}
    assert marks == {
        ("armed", "hub"): "2019-09-02T13:27:30+00:00", ("armed", "branch"): "2019-09-02T13:27:31+00:00",
        ("captured", ""): CAPTURED.isoformat(),
        ("disarmed", "hub"): "2019-09-02T13:30:05+00:00", ("disarmed", "branch"): "2019-09-02T13:30:07+00:00",
    }


def test_armed_at_is_the_mark_when_changes_have_no_times():
    result = make_result()  # actions without `at`
    tree = Tree(render_html(diagnose(result), actions=result.actions))
    marks = [(m.attrs["data-kind"], m.attrs["data-time"]) for m in tree.root.all("g", **{"class": "mark"})]
    assert marks == [("armed", "2019-09-02T13:27:30+00:00"), ("captured", CAPTURED.isoformat())]


def test_side_by_side_lines_put_each_router_in_its_column(page):
    d, tree, _ = page
    table = tree.root.all("table", id="lines")[0]
    assert [th.get_text() for th in table.all("th")] == ["agent time", "hub (receiver)", "branch (sender)"]
    rows = table.all("tr")[1:]
    times = [r.attrs["data-time"] for r in rows]
    assert times == sorted(times)
    for row in rows:
        cells = row.all("td")[1:]
        filled = [c for c in cells if c.get_text()]
        assert len(filled) == 1
        assert filled[0] is cells[0 if filled[0].attrs["data-router"] == "hub" else 1]
    marked = [m.get_text() for m in table.all("mark")]
    assert len(marked) == 2 and all("RECVD_PKT_INV_SPI" in m and "0xB761863E" in m for m in marked)


def test_sa_tables_side_by_side_with_the_logged_spi_marked(page):
    d, tree, _ = page
    table = tree.root.all("table", id="sa-tables")[0]
    rx = " ".join(td.get_text() for td in table.all("td", data_role="receiver"))
    tx = " ".join(td.get_text() for td in table.all("td", data_role="sender"))
    receiver_table, sender_table = d.sa_tables["receiver"], d.sa_tables["sender"]
    for sa, column in ((receiver_table, rx), (sender_table, tx)):
        for spi in sa.outbound_spis | sa.inbound_spis:
            assert f"0x{spi:08X}" in column
    assert "0x11112222" in rx and "0x11112222" not in tx  # an inbound SA only the receiver has
    assert "#pkts" not in rx and rx.split()[-2:] == ["42", "no"]  # invalid sa (rcv) 42, NAT-T no
    marked = [(m.attrs["data-spi"], m.parent.attrs.get("data-role")) for m in table.all("mark")]
    assert marked == [("0xB761863E", "sender"), ("0xB761863E", "sender")]  # current outbound + outbound SA
    cross = {tuple(td.get_text() for td in tr.all("td")) for tr in tree.root.all("table", id="sa-cross-check")[0].all("tr")[1:]}
    assert ("branch → hub", "0xB761863E", "no") in cross and ("hub → branch", "0x0A0B0C0D", "yes") in cross


def test_findings_and_verdict_match_the_diagnosis(page):
    d, tree, _ = page
    sections = tree.root.all("section", **{"class": "finding"})
    assert [s.attrs["data-id"] for s in sections] == [f.id for f in d.findings]
    for section, finding in zip(sections, d.findings):
        assert section.attrs["data-severity"] == finding.severity.value
        assert finding.title in section.get_text()
        for evidence in finding.evidence:
            assert evidence.text in section.get_text()
    assert tree.root.all("p", **{"class": "verdict"})[0].attrs["data-verdict"] == "out-of-sync-confirmed"


def test_page_is_self_contained_and_device_text_cannot_inject_markup():
    evil = HUB_LOG + 'Sep  2 13:29:00.000: %SYS-5-CONFIG_I: <script>alert(1)</script><img src="http://x/y">\n'
    result = result_with_offsets(hub_log=evil)
    text = render_html(diagnose(result), actions=result.actions)
    tree = Tree(text)
    assert "script" not in tree.tags and "img" not in tree.tags and "link" not in tree.tags
    assert "iframe" not in tree.tags
    for node in tree.root.all():
        for name in ("src", "href"):
            assert name not in node.attrs, (node.tag, node.attrs)
    titles = " ".join(t.get_text() for t in tree.root.all("title"))
    assert '<script>alert(1)</script><img src="http://x/y">' in titles  # shown as text, not markup


def test_bundle_on_disk_renders_the_same_page_as_the_capture(tmp_path):
    result = result_with_offsets()
    bundle = write_incident_bundle(result, tmp_path)
    from_disk = render_bundle_html(bundle)
    from_capture = render_capture_html(result)
    # only the "diagnosed from" source line differs
    strip = lambda t: "\n".join(line for line in t.splitlines() if "diagnosed from" not in line)  # noqa: E731
    assert strip(from_disk) == strip(from_capture)
    assert Tree(from_disk).root.all("svg", id="timeline")



def test_each_ends_own_arm_time_is_its_mark():
    ends = {"hub": "2019-09-02T13:28:20+00:00", "branch": "2019-09-02T13:27:31+00:00"}
    result = replace(make_result(actions=ACTIONS), armed_ends={r: at(t) for r, t in ends.items()})
    tree = Tree(render_html(diagnose(result), actions=result.actions))
    marks = {m.attrs["data-router"]: m.attrs["data-time"] for m in tree.root.all("g", **{"class": "mark"})
             if m.attrs["data-kind"] == "armed"}
    assert marks == ends  # not the changes' times: a step applied is not yet every debug on
