"""`iter_lines`: the lines of a big text one at a time, exactly as `str.splitlines()`;
`has_control_character`: what may never reach a router inside a command."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from collector.textlines import has_control_character, iter_lines

_CHARS = list("ab \t") + ["\r", "\n", "\r\n", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@settings(max_examples=3000)
@given(st.lists(st.sampled_from(_CHARS), max_size=40))
def test_iter_lines_is_splitlines(parts):
    text = "".join(parts)
    assert list(iter_lines(text)) == text.splitlines()


@settings(max_examples=2000)
@given(st.lists(st.sampled_from(_CHARS), max_size=60), st.integers(1, 8))
def test_iter_lines_in_small_chunks_is_splitlines(parts, chunk):
    """Chunks cut after a "\n" (one char to a few lines each) split as the whole text does."""
    text = "".join(parts)
    assert list(iter_lines(text, chunk=chunk)) == text.splitlines()


@settings(max_examples=2000)
@given(st.lists(st.sampled_from(_CHARS), max_size=60), st.integers(0, 60), st.integers(1, 8))
def test_iter_lines_from_where_a_line_begins_is_splitlines_of_the_rest(parts, nth, chunk):
    from collector.textlines import LINE_END

    text = "".join(parts)
    begins = [0] + [m.end() for m in LINE_END.finditer(text)]
    start = begins[nth % len(begins)]
    assert list(iter_lines(text, start=start, chunk=chunk)) == text[start:].splitlines()


@settings(max_examples=3000)
@given(st.text(alphabet=st.characters(max_codepoint=0x3000), max_size=30))
def test_has_control_character_is_any_c0_control_or_del(text):
    assert has_control_character(text) == any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


def test_has_control_character_in_commands():
    assert has_control_character("show run\nreload")
    assert has_control_character("debug crypto\tisakmp")
    assert has_control_character("show clock\x7f")
    assert not has_control_character("show logging | include %CRYPTO-4-RECVD_PKT_INV_SPI")
    assert not has_control_character("show clock\x80")  # C1 is not C0: IOS takes it as text
