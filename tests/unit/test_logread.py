"""The log reader on real `show logging` forms (docs/domain.md §2.11, ntc-templates and
genieparser captures): headers of IOS and IOS-XE, uptime stamps, no stamps, sequence
numbers, year stamps; reads across wrap, clear, resize and reload; the filtered poll."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from collector.detect.logread import (
    LogHeader,
    LogPosition,
    WatchError,
    log_as_of,
    poll_command,
    read_new_lines,
    split_show_logging,
    watch_matcher,
)
from collector.lab.filters import apply_filters, split_filters

WATCH = ["CRYPTO-4-RECVD_PKT_INV_SPI"]
INV = ("%CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi for destaddr=192.0.2.1, "
       "prot=50, spi=0x1DB73BBB(498547643), srcaddr=198.51.100.2, input interface=GigabitEthernet0/0")

# ntc-templates tests/cisco_ios/show_logging/cisco_ios_show_logging_1.raw (IOS, 16 KB, seq numbers,
# the first buffer line a fragment left by the wrap)
IOS_NTC_1 = """Syslog logging: enabled (0 messages dropped, 34 messages rate-limited, 0 flushes, 0 overruns, xml disabled, filtering disabled)

No Active Message Discriminator.



No Inactive Message Discriminator.


    Console logging: level debugging, 22827 messages logged, xml disabled,
                     filtering disabled
    Monitor logging: level debugging, 68 messages logged, xml disabled,
                     filtering disabled
    Buffer logging:  level debugging, 22860 messages logged, xml disabled,
                    filtering disabled
    Exception Logging: size (4096 bytes)
    Count and timestamp logging messages: disabled
    File logging: disabled
    Persistent logging: disabled

No active filter modules.

    Trap logging: level informational, 22790 message lines logged
        Logging Source-Interface:       VRF Name:

Log Buffer (16384 bytes):
7:04: %LINEPROTO-5-UPDOWN: Line protocol on Interface GigabitEthernet2/0/3, changed state to up
022701: Jun 19 03:02:31: %LINEPROTO-5-UPDOWN: Line protocol on Interface GigabitEthernet2/0/3, changed state to down
022702: Jun 19 03:02:32: %LINK-3-UPDOWN: Interface GigabitEthernet2/0/3, changed state to down
022703: Jun 19 03:02:37: %LINK-3-UPDOWN: Interface GigabitEthernet2/0/3, changed state to up
"""

# genieparser iosxe/tests/ShowLogging golden_output_1 (IOS-XE, the capture indented as a whole)
XE_GENIE_1 = """
        Syslog logging: enabled (0 messages dropped, 149 messages rate-limited, 0 flushes, 0 overruns, xml disabled, filtering disabled)

        No Active Message Discriminator.

        No Inactive Message Discriminator.

            Console logging: disabled
            Monitor logging: level debugging, 0 messages logged, xml disabled,
                             filtering disabled
            Buffer logging:  level debugging, 481 messages logged, xml disabled,
                            filtering disabled
            Exception Logging: size (4096 bytes)
            Count and timestamp logging messages: disabled
            Persistent logging: disabled

        No active filter modules.

            Trap logging: level informational, 478 message lines logged
                Logging Source-Interface:       VRF Name:

        Log Buffer (4096 bytes):
        Jun  5 05:09:30.838 EST: %IP-4-DUPADDR: Duplicate address 172.16.1.216 on GigabitEthernet1, sourced by 5e00.80ff.0606
        Jun  5 05:10:36.839 EST: %IP-4-DUPADDR: Duplicate address 172.16.1.216 on GigabitEthernet1, sourced by 5e00.80ff.0606
        Jun  5 05:10:59.519 EST: %SYS-5-CONFIG_I: Configured from console by cisco on console
        Jun  5 05:11:04.626 EST: Rollback:Acquired Configuration lock.
        Jun  5 05:11:04.626 EST: %SYS-5-CONFIG_R: Config Replace is Done
        Jun  5 05:11:14.115 EST: Rollback:Acquired Configuration lock.
        Jun  5 05:11:14.115 EST: %SYS-5-CONFIG_R: Config Replace is Done
        """

# IOS-XE with the `Trap logging:` line un-indented (domain.md §2.11)
XE_HEADER = """Syslog logging: enabled (0 messages dropped, 3 messages rate-limited, 0 flushes, 0 overruns, xml disabled, filtering disabled)

No Active Message Discriminator.

No Inactive Message Discriminator.

    Console logging: disabled
    Monitor logging: level debugging, 0 messages logged, xml disabled,
                     filtering disabled
    Buffer logging:  level debugging, {logged} messages logged, xml disabled,
                    filtering disabled
    Exception Logging: size (4096 bytes)
    Count and timestamp logging messages: disabled
    Persistent logging: disabled

No active filter modules.

Trap logging: level informational, 1187 message lines logged
        Logging to 55.55.55.70  (Mgmt-vrf) (udp port 514, audit disabled,
              link up),
              1187 message lines logged,
              0 message lines rate-limited,
              0 message lines dropped-by-MD,
              xml disabled, sequence number disabled
              filtering disabled
        Logging Source-Interface:       VRF Name:

Log Buffer ({size} bytes):

"""


def show(lines: list[str], logged: int, size: int = 10_000_000) -> str:
    return XE_HEADER.format(logged=logged, size=size) + "".join(line + "\n" for line in lines)


def read(previous, text, **kw):
    header, lines = split_show_logging(text)
    return read_new_lines(previous, header, lines, watch=WATCH, **kw)


# --------------------------------------------------------------------------- headers


def test_ios_header_and_fragment_from_ntc_capture():
    header, lines = split_show_logging(IOS_NTC_1)
    assert header == LogHeader(buffer_enabled=True, buffer_bytes=16384, logged=22860, level="debugging")
    assert lines[0].startswith("7:04: %LINEPROTO")
    result = read_new_lines(None, header, lines)
    assert result.method == "first"
    # numbered from the count: the newest record is message 22860
    assert [n.ordinal for n in result.new_lines] == [22857, 22858, 22859, 22860]
    assert [n.seq for n in result.new_lines] == [None, 22701, 22702, 22703]
    assert result.position.seq == 22703


def test_xe_header_of_an_indented_capture():
    header, lines = split_show_logging(XE_GENIE_1)
    assert (header.buffer_bytes, header.logged, header.level) == (4096, 481, "debugging")
    result = read_new_lines(None, header, lines)
    assert len(result.new_lines) == 7
    assert result.new_lines[-1].ordinal == 481
    assert result.new_lines[3].text == "Jun  5 05:11:04.626 EST: Rollback:Acquired Configuration lock."


def test_xe_header_with_unindented_trap_line_and_vrf():
    header, lines = split_show_logging(show([f"*Oct 24 04:31:10.058: {INV}"], logged=1187))
    assert (header.buffer_bytes, header.logged) == (10_000_000, 1187)
    assert len(lines) == 1


def test_disabled_buffer_reports_nothing():
    text = IOS_NTC_1.replace("Buffer logging:  level debugging, 22860 messages logged, xml disabled,",
                             "Buffer logging:  disabled, xml disabled,").split("Log Buffer")[0]
    header, lines = split_show_logging(text)
    assert header.buffer_enabled is False and lines == []
    result = read_new_lines(LogPosition(logged=5, buffer_bytes=4096), header, lines)
    assert result.new_lines == () and result.method == "none"


def test_a_logged_line_imitating_the_header_moves_nothing():
    forged = [
        "Dec  6 00:00:01.000: %HA_EM-6-LOG: x: Buffer logging:  level debugging, 999999 messages logged, xml disabled,",
        "    Buffer logging:  level debugging, 999999 messages logged, xml disabled,",
        "Log Buffer (1 bytes):",
        f"Dec  6 00:00:02.000: {INV}",
    ]
    header, lines = split_show_logging(show(forged, logged=4))
    assert (header.logged, header.buffer_bytes) == (4, 10_000_000)
    assert len(lines) == 4


# --------------------------------------------------------------------------- identical lines


@pytest.mark.parametrize("stamp", ["8w0d: ", "1d02h: ", "", "*Mar  1 00:01:10: "])
def test_identical_lines_are_counted_one_by_one(stamp):
    line = f"{stamp}{INV}"
    first = read(None, show([line] * 3, logged=3))
    assert len(first.new_lines) == 3
    # two more identical lines: two events, not zero
    second = read(first.position, show([line] * 5, logged=5))
    assert [n.ordinal for n in second.new_lines] == [4, 5] and second.gap is None
    # the buffer wrapped (holds 4), three more were logged: three events, nothing lost
    third = read(second.position, show([line] * 4, logged=8))
    assert [n.ordinal for n in third.new_lines] == [6, 7, 8] and third.gap is None
    # six more logged but the buffer holds only four: four events and a gap of two
    fourth = read(third.position, show([line] * 4, logged=14))
    assert [n.ordinal for n in fourth.new_lines] == [11, 12, 13, 14]
    assert fourth.gap is not None and fourth.gap.startswith("2 of 6 messages")
    keys = [n.key for r in (first, second, third, fourth) for n in r.new_lines]
    assert len(keys) == len(set(keys))


def test_nothing_new_when_the_count_did_not_move():
    lines = [f"8w0d: {INV}"] * 3
    first = read(None, show(lines, logged=3))
    again = read(first.position, show(lines, logged=3))
    assert again.new_lines == () and again.gap is None


# --------------------------------------------------------------------------- sequence numbers, years


def test_sequence_numbers_with_year_stamps():
    def line(seq, sec):
        return f"{seq}: Feb 13 2024 01:00:{sec:02d}.167 EST: %LINEPROTO-5-UPDOWN: Line protocol on Interface Tunnel1, changed state to down"

    first = read(None, show([line(20995084, 0), line(20995085, 1)], logged=900))
    assert first.position.seq == 20995085
    # numbers skip (messages below the buffer's level are numbered too): the number decides
    second = read(first.position, show([line(20995084, 0), line(20995085, 1), line(20995090, 5)], logged=901))
    assert second.method == "seq"
    assert [(n.seq, n.ordinal) for n in second.new_lines] == [(20995090, 901)]
    assert second.gap is None


def test_sequence_numbers_with_uptime_stamps_and_identical_text():
    def line(seq):
        return f"{seq:06d}: 8w0d: {INV}"

    first = read(None, show([line(1), line(2)], logged=2))
    second = read(first.position, show([line(1), line(2), line(3), line(4)], logged=4))
    assert [n.seq for n in second.new_lines] == [3, 4]


# --------------------------------------------------------------------------- clear, resize, reload, clock


def test_clear_logging_keeps_the_count_and_loses_what_was_not_read():
    lines = [f"*Mar 12 18:22:{s:02d}.706: {INV}" for s in range(3)]
    first = read(None, show(lines, logged=3))
    # `clear logging`, then 2 messages: the count goes on, the buffer holds only those two
    after = [f"*Mar 12 18:30:{s:02d}.706: {INV}" for s in range(2)]
    second = read(first.position, show(after, logged=5))
    assert [n.ordinal for n in second.new_lines] == [4, 5] and second.gap is None
    # cleared again after one unread message, then one more: one lost, said so
    third = read(second.position, show([f"*Mar 12 18:40:00.706: {INV}"], logged=7))
    assert [n.ordinal for n in third.new_lines] == [7]
    assert "1 of 2 messages" in third.gap and "cleared" in third.gap


def test_resize_is_named_in_the_gap():
    first = read(None, show([f"8w0d: {INV}"] * 2, logged=2, size=4096))
    second = read(first.position, show([f"8w0d: {INV}"], logged=5, size=1_000_000))
    assert [n.ordinal for n in second.new_lines] == [5]
    assert "resized from 4096 to 1000000 bytes" in second.gap


def test_reload_count_goes_down():
    first = read(None, show([f"8w0d: {INV}"] * 4, logged=500))
    second = read(first.position, show([f"00:01:10: {INV}"] * 2, logged=2))
    assert second.method == "reset" and "reloaded" in second.gap
    assert [n.key for n in second.new_lines] == ["1:n1", "1:n2"]


def test_reload_with_the_count_grown_past_the_old_one_and_distinct_lines():
    old = [f"*Mar 12 18:22:{s:02d}.706: {INV}" for s in range(4)]
    first = read(None, show(old, logged=4))
    new = [f"*Mar  1 00:00:{s:02d}.001: %SYS-5-RESTART: System restarted --" for s in range(9)]
    second = read(first.position, show(new, logged=9))
    assert second.method == "reset" and len(second.new_lines) == 9 and second.gap is not None


def test_a_clock_jump_back_changes_nothing():
    lines = [f"Dec  6 10:00:{s:02d}.000: {INV}" for s in range(3)]
    first = read(None, show(lines, logged=3))
    jumped = lines + ["Dec  6 09:00:00.000: " + INV, "Dec  6 10:00:01.000: " + INV]  # NTP stepped back
    second = read(first.position, show(jumped, logged=5))
    assert [n.text[:21] for n in second.new_lines] == ["Dec  6 09:00:00.000: ", "Dec  6 10:00:01.000: "]


def test_a_line_logged_while_the_header_was_printed_is_realigned_not_lost():
    lines = [f"Dec  6 10:00:{s:02d}.000: %LINK-3-UPDOWN: Interface Gi0/{s}, changed state to up" for s in range(6)]
    first = read(None, show(lines[:3], logged=3))
    # the header says 4 but the buffer already shows 5 (one logged in between)
    second = read(first.position, show(lines[:5], logged=4))
    assert second.method == "realigned"
    assert [n.text for n in second.new_lines] == lines[3:5]
    third = read(second.position, show(lines[:6], logged=6))
    assert [n.text for n in third.new_lines] == lines[5:]
    keys = [n.key for r in (first, second, third) for n in r.new_lines]
    assert len(keys) == len(set(keys))


def test_multi_line_debug_records_count_once():
    record = ["IKEv2:(SESSION ID = 1,SA ID = 1):Received Packet [From 198.51.100.2:500/To 192.0.2.1:500/VRF i0:f0]",
              "Payload contents:", " SA N  TSi TSr"]
    first = read(None, show([f"8w0d: {INV}"], logged=1))
    second = read(first.position, show([f"8w0d: {INV}", *record, f"8w0d: {INV}"], logged=3))
    assert [n.ordinal for n in second.new_lines] == [2, 3]
    assert second.new_lines[0].text == "\n".join(record)


# --------------------------------------------------------------------------- poll command


def test_poll_command_text_and_validation():
    assert poll_command(WATCH) == "show logging | include Log.Buffer|Buffer.logging|CRYPTO-4-RECVD.PKT.INV.SPI"
    assert poll_command(["RECVD_PKT_INV_SPI", "IPSEC-3-RECVD_PKT_NOT_IPSEC", "RECVD_PKT_INV_SPI"]).endswith(
        "|RECVD.PKT.INV.SPI|IPSEC-3-RECVD.PKT.NOT.IPSEC")
    for bad in ([], ["recvd_pkt"], ["A B"], ["A|B"], ["A.*"], ["X" * 65], [None], ["A\nshow run"]):
        with pytest.raises(WatchError):
            poll_command(bad)
    assert watch_matcher(WATCH).search(INV) and not watch_matcher(WATCH).search("CRYPTO-4-RECVD.PKT")


def test_poll_command_through_the_labs_include_keeps_header_and_watched_lines():
    text = IOS_NTC_1 + f"022704: Jun 19 03:02:40: {INV}\n"
    command, filters = split_filters(poll_command(WATCH))
    out = apply_filters(text, filters, lambda *a: None)
    assert command.strip() == "show logging"
    assert out.splitlines() == [
        "    Buffer logging:  level debugging, 22860 messages logged, xml disabled,",
        "Log Buffer (16384 bytes):",
        f"022704: Jun 19 03:02:40: {INV}",
    ]
    header, lines = split_show_logging(out)
    assert (header.logged, header.buffer_bytes, lines) == (22860, 16384, [f"022704: Jun 19 03:02:40: {INV}"])


# --------------------------------------------------------------------------- filtered reads


def filtered(previous, lines, logged, size=10_000_000):
    text = show(lines, logged=logged, size=size)
    command, filters = split_filters(poll_command(WATCH))
    return read(previous, apply_filters(text, filters, lambda *a: None), filtered=True)


def test_filtered_read_counts_identical_uptime_lines_after_a_full_read():
    other = "8w0d: %LINK-3-UPDOWN: Interface GigabitEthernet0/1, changed state to up"
    buffer = [other, f"8w0d: {INV}", other, f"8w0d: {INV}"]
    full = read(None, show(buffer, logged=4))
    assert len(full.position.watched) == 2
    buffer += [other, f"8w0d: {INV}", f"8w0d: {INV}"]
    result = filtered(full.position, buffer, logged=7)
    assert result.full_read_needed is None and result.method == "align"
    assert [n.text for n in result.new_lines] == [f"8w0d: {INV}"] * 2
    again = filtered(result.position, buffer, logged=7)
    assert again.new_lines == () and again.full_read_needed is None
    keys = [n.key for n in result.new_lines]
    assert len(set(keys)) == 2


def test_filtered_read_asks_for_a_full_read_when_identical_lines_may_have_left_the_buffer():
    buffer = [f"8w0d: {INV}"] * 3
    full = read(None, show(buffer, logged=3, size=4096))
    # 100 messages later (more than a 4 KB buffer surely holds) the buffer shows four of them
    result = filtered(full.position, [f"8w0d: {INV}"] * 4, logged=103, size=4096)
    assert result.full_read_needed and result.new_lines == ()
    assert result.position == full.position  # nothing moved: the full read starts from here


def test_filtered_read_with_sequence_numbers_is_exact():
    def line(seq):
        return f"{seq:06d}: 8w0d: {INV}"

    full = read(None, show([line(10), "000011: 8w0d: %SYS-5-CONFIG_I: Configured from console by admin on vty0"],
                           logged=11))
    result = filtered(full.position, [line(10), line(15), line(16)], logged=16)
    assert result.method == "seq" and [n.seq for n in result.new_lines] == [15, 16]
    assert [n.key for n in result.new_lines] == ["0:s15", "0:s16"]


@pytest.mark.parametrize("change", ["first", "resize", "down"])
def test_filtered_read_defers_to_a_full_read(change):
    full = read(None, show([f"8w0d: {INV}"], logged=1, size=4096))
    if change == "first":
        result = filtered(None, [f"8w0d: {INV}"], logged=1)
    elif change == "resize":
        result = filtered(full.position, [f"8w0d: {INV}"], logged=2, size=8192)
    else:
        result = filtered(full.position, [], logged=0, size=4096)
    assert result.full_read_needed and result.new_lines == ()


# --------------------------------------------------------------------------- fallback, persistence


def test_without_a_count_fingerprints_are_the_fallback():
    text = "Log Buffer (4096 bytes):\n" + f"8w0d: {INV}\n" * 2
    first = read(None, text)
    assert first.method == "fingerprint" and len(first.new_lines) == 2
    second = read(first.position, text + f"8w0d: {INV}\n")
    assert len(second.new_lines) == 1


def test_position_text_round_trip_and_bad_text():
    result = read(None, IOS_NTC_1)
    assert LogPosition.from_text(result.position.to_text()) == result.position
    for bad in (None, "", "abc:1,def:2", "{}", '{"v": 1, "logged": "x"}', "[1]"):
        assert LogPosition.from_text(bad) is None


# --------------------------------------------------------------------------- one poll


def test_poll_log_reads_whole_only_when_it_must():
    from collector.detect.logread import poll_log
    from tests.unit.logbuffer_sim import BODIES, SimRouter

    router = SimRouter(capacity=100_000, stamp="uptime")
    commands: list[str] = []

    def run(command: str) -> str:
        commands.append(command)
        return router.show_logging() if command == "show logging" else router.show_logging_include(command)

    for body in BODIES:
        router.log(body)
    first = poll_log(run, None, WATCH)
    assert commands == ["show logging"] and len(first.new_lines) == len(BODIES)
    router.log(BODIES[0])
    router.log(BODIES[3])
    router.log(BODIES[0])
    second = poll_log(run, first.position, WATCH)
    assert commands[1:] == [poll_command(WATCH)]
    assert [n.text for n in second.new_lines] == [f"8w0d: {BODIES[0]}"] * 2
    router.resize(50_000)
    router.log(BODIES[0])
    third = poll_log(run, second.position, WATCH)
    assert commands[2:] == [poll_command(WATCH), "show logging"]
    assert [n.ordinal for n in third.new_lines] == [router.logged]
    assert "resized" in third.notes[-1] or "size changed" in third.notes[-1]


# ntc-templates tests/cisco_ios/show_logging/cisco_ios_show_logging_5.raw (buffer part): a
# fragment at the head, and a message whose second line is indented and followed by a blank line
NTC_5_BUFFER = """Log Buffer (100000 bytes):
rtual-PPP2, changed state to down
*Sep 14 05:59:54.113: %LINEPROTO-5-UPDOWN: Line protocol on Interface Virtual-PPP2, changed state to up
*Sep 14 06:00:45.693: %CRYPTO-4-PKT_REPLAY_ERR: decrypt: replay check failed
        connection id=29, sequence number=219

*Sep 14 06:07:26.245: %LINEPROTO-5-UPDOWN: Line protocol on Interface Virtual-PPP2, changed state to down
"""


def test_real_multi_line_message_is_one_record():
    header_line = "    Buffer logging:  level informational, 10048 messages logged, xml disabled,\n"
    result = read(None, header_line + NTC_5_BUFFER)
    assert [n.ordinal for n in result.new_lines] == [10045, 10046, 10047, 10048]
    assert result.new_lines[0].text == "rtual-PPP2, changed state to down"
    assert result.new_lines[2].text.endswith("replay check failed\n        connection id=29, sequence number=219")
    # one more message: only it is new, the two-line one is not counted twice
    later = NTC_5_BUFFER + "*Sep 14 06:08:00.000: %LINK-3-UPDOWN: Interface Virtual-PPP2, changed state to up\n"
    second = read(result.position, header_line.replace("10048", "10049") + later)
    assert [n.ordinal for n in second.new_lines] == [10049] and second.gap is None


# --------------------------------------------------------------------------- log_as_of

HEAD = ("Syslog logging: enabled (0 messages dropped, 0 messages rate-limited)\n"
        "    Buffer logging:  level debugging, {n} messages logged, xml disabled,\n"
        "Log Buffer (10000000 bytes):\n\n")


def _record(i: int, continued: bool) -> str:
    line = f"*Dec  6 10:{i // 60:02d}:{i % 60:02d}.000: %SYS-5-CONFIG_I: Configured from console by u{i} on vty0"
    if continued:  # an unstamped continuation belongs to the record above it
        line += "\n ISAKMP:      encryption AES-CBC"
    return line


@given(st.lists(st.booleans(), max_size=30), st.data())
def test_a_read_after_arming_is_cut_back_to_the_records_the_earlier_count_covered(shapes, data):
    records = [_record(i, c) for i, c in enumerate(shapes)]
    before = data.draw(st.integers(0, len(records)))
    base = data.draw(st.integers(0, 5000))  # messages logged before the oldest record still in the buffer
    later = HEAD.format(n=base + len(records)) + "\n".join(records) + "\n"
    cut = log_as_of(later, base + before)
    assert split_show_logging(cut)[1] == "\n".join(records[:before]).splitlines()
    assert cut.startswith(HEAD.format(n=base + len(records)).rstrip("\n"))  # the header stays as it was read


@given(st.lists(st.booleans(), max_size=30), st.data())
def test_the_cut_is_the_same_whatever_the_buffer_looks_like_around_its_records(shapes, data):
    """A buffer whose oldest line is a fragment cut by the wrap (a record of its own),
    with blank lines between records and CRLF line ends, is cut by records all the same."""
    records = [_record(i, c) for i, c in enumerate(shapes)]
    fragment = data.draw(st.booleans())
    if fragment:
        records.insert(0, "rtual-PPP2, changed state to down")  # not a record start: the first line still is one
    before = data.draw(st.integers(0, len(records)))
    blanks = [data.draw(st.sampled_from(["", "\n", "   \n"])) for _ in records]
    newline = data.draw(st.sampled_from(["\n", "\r\n"]))
    body = "".join(blank + record + "\n" for blank, record in zip(blanks, records))
    text = (HEAD.format(n=100 + len(records)) + body).replace("\n", newline)
    cut = log_as_of(text, 100 + before)
    assert split_show_logging(cut)[1] == "\n".join(records[:before]).splitlines()


def test_no_cut_without_a_count_or_when_the_count_went_back():
    text = HEAD.format(n=10) + _record(1, False) + "\n"
    assert log_as_of(text, 11) is None  # reloaded, or counters cleared, in between
    assert log_as_of(_record(1, False) + "\n", 0) is None  # a bare `| include`: no header, no count
    assert log_as_of(text, 10) == text.replace(":\n\n", ":\n")  # all of it (the blank line aside)
    assert log_as_of(text, 9) == HEAD.format(n=10).rstrip("\n") + "\n"  # the header alone
