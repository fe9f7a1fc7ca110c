from collector.detect.cursor import LogCursor, new_lines

A = "000101: *Nov 27 10:00:01.001: %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi for destaddr=192.0.2.1, prot=50, spi=0x1DB73BBB(498547643), srcaddr=198.51.100.2"
B = A.replace("000101", "000102").replace("10:00:01", "10:01:02")
C = A.replace("000101", "000103").replace("10:00:01", "10:02:03")


def test_first_read_reports_everything():
    fresh, cursor = new_lines(LogCursor(), [A, B])
    assert fresh == [A, B]
    assert len(cursor.seen) == 2


def test_second_read_reports_only_new_lines():
    _, cursor = new_lines(LogCursor(), [A, B])
    fresh, _ = new_lines(cursor, [A, B, C])
    assert fresh == [C]


def test_buffer_wrap_drops_old_lines_without_rereporting():
    _, cursor = new_lines(LogCursor(), [A, B])
    fresh, cursor = new_lines(cursor, [B, C])  # A wrapped out of the buffer
    assert fresh == [C]
    fresh, _ = new_lines(cursor, [C])
    assert fresh == []


def test_clear_logging_then_same_sequence_numbers_with_new_times_are_new():
    _, cursor = new_lines(LogCursor(), [A, B])
    restarted = A.replace("10:00:01", "11:30:00")  # sequence 000101 again after `clear logging`
    fresh, _ = new_lines(cursor, [restarted])
    assert fresh == [restarted]


def test_identical_lines_without_timestamps_are_counted():
    bare = "%CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi for destaddr=192.0.2.1, prot=50, spi=0x1(1), srcaddr=198.51.100.2"
    _, cursor = new_lines(LogCursor(), [bare])
    fresh, cursor = new_lines(cursor, [bare, bare])
    assert fresh == [bare]
    fresh, _ = new_lines(cursor, [bare, bare])
    assert fresh == []


def test_cursor_text_round_trip():
    _, cursor = new_lines(LogCursor(), [A, B, B])
    again = LogCursor.from_text(cursor.to_text())
    assert again == cursor
    assert LogCursor.from_text("garbage,,x:y") == LogCursor()
