"""The prompt and refusal rules of the session layer, as pure functions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.sessions import hostname_set_by, prompt_name, prompt_pattern, refusal_in

LONG = "dc1-wan-edge-router.paris-0042.example.net-with-63-characters-x"


def test_the_long_name_is_the_ios_maximum():
    assert len(LONG) == 63


@pytest.mark.parametrize("name", ["R1", "core-rtr-par-001", "core-rtr-par-0001", "edge.rtr-paris-00001",
                                  "edge.rtr-paris-000001", LONG])
def test_exec_and_config_prompts_match_as_ios_prints_them(name):
    pattern = prompt_pattern(name)
    assert pattern.search(f"output\n{name}>")
    assert pattern.search(f"output\n{name}#")
    assert pattern.search(f"{name}# ")
    for mode in ("config", "config-if", "config-applet", "config-isakmp", "cfg-crypto-trans", "config-ikev2-profile"):
        assert pattern.search(f"\n{name[:20]}({mode})#"), mode


@pytest.mark.parametrize("text", [
    "\n" + LONG[:16] + "#",          # netmiko's 16-character base prompt
    "\n" + LONG[:20] + "#",          # the 20-character form without a mode is not a prompt
    "\nother-router#",
    "\n" + LONG + "#\nmore output",  # a prompt-looking line inside an output
    "\nx" + LONG + "#",              # a longer name ending the same way
])
def test_other_lines_are_not_the_prompt(text):
    assert not prompt_pattern(LONG).search(text)


def test_a_pattern_for_two_names_accepts_both():
    pattern = prompt_pattern("old", "new-name-longer-than-twenty")
    assert pattern.search("\nold(config)#") and pattern.search("\nnew-name-longer-than(config)#")
    assert pattern.search("\nnew-name-longer-than-twenty#")


def test_dots_in_names_are_literal():
    assert not prompt_pattern("a.b").search("\naXb#")


@pytest.mark.parametrize("line, name", [
    ("R1>", "R1"), ("R1#", "R1"), ("R1# ", "R1"), (LONG + "#", LONG), ("edge.rtr-1(config)#", "edge.rtr-1"),
    ("####", None), ("# Authorised access only #", None), ("Password:", None), ("a" * 64 + "#", None), ("", None),
    ("-bad#", None),
])
def test_prompt_name_learns_only_valid_ios_hostnames(line, name):
    assert prompt_name(line) == name


@pytest.mark.parametrize("line, name", [
    ("hostname new-hub.paris", "new-hub.paris"), ("  hostname X1 ", "X1"), ("no hostname", "Router"),
    ("hostname", None), ("hostname a;b", None), ("ip host hostname 1.2.3.4", None), ("logging host 1.2.3.4", None),
])
def test_hostname_lines_are_recognised(line, name):
    assert hostname_set_by(line) == name


@pytest.mark.parametrize("output, refusal", [
    ("Command authorization failed.\n", "Command authorization failed"),
    ("foo\n  ^\n% Invalid input detected at '^' marker.\n", "Invalid input detected"),
    ("% Incomplete command.\n", "Incomplete command"),
    ('% Ambiguous command:  "sh cr"\n', "Ambiguous command"),
    ("% Unknown command or computer name, or unable to find computer address\n", "Unknown command"),
    ("interface up\n", None),
    ("description Command authorization failed. is not at a line start here\n", None),
])
def test_refusals_are_found(output, refusal):
    assert refusal_in(output) == refusal


# --------------------------------------------------------------------------------------
# Cleaning an output: the reader joins the pieces once and cuts the echo and the prompt
# in one slice (the prompt looked for near the end only). The rule, in plain steps, is
# the oracle: no CR, no pager marks or their erasure, the echo line of the command gone,
# the text cut where the prompt that ends it starts.

def _plain_clean(pattern, command: str, raw: str) -> str:
    import re

    text = raw.replace("\r\n", "\n").replace("\r", "")
    text = re.sub(r"[ \x08]+\x08", "", text.replace("--More--", ""))
    first, _sep, rest = text.partition("\n")
    if command.strip() and first.strip().endswith(command.strip()[-40:]):
        text = rest
    match = pattern.search(text)
    if match:
        text = text[: match.start()] + ("\n" if match.group(0).startswith("\n") else "")
    return text


# -- the fast forms against the plain searches they replace ------------------------------------

import re  # noqa: E402

from collector.sessions.prompts import _REFUSED, PromptReader  # noqa: E402

_PIECES = ["% Invalid input detected at '^' marker.", "%Incomplete command.", "Command authorization failed.",
           "% Ambiguous command:  \"sh c\"", "%CRYPTO-4-RECVD_PKT_INV_SPI: decaps", "rtr1#", "rtr1(config)#",
           "rtr1(config-if)# ", "rtr1>", "other#", "show logging", " ", "\x08", "--More--", "x", "%", "#", ">"]
_text = st.lists(st.tuples(st.sampled_from(_PIECES), st.sampled_from(["", "\n", "\r\n", " "])), max_size=12).map(
    lambda parts: "".join(p + sep for p, sep in parts))


@settings(max_examples=400, deadline=None)
@given(_text)
def test_a_refusal_is_found_where_the_multiline_search_finds_it(text):
    match = _REFUSED.search(text)
    assert refusal_in(text) == ((match.group(1) or match.group(2)) if match else None)


def _cut_with_a_whole_search(reader: PromptReader, command: str, raw: str) -> str:
    text = raw.replace("\r\n", "\n").replace("\r", "")
    text = re.sub(r"[ \x08]+\x08", "", text.replace("--More--", ""))
    first, sep, rest = text.partition("\n")
    if command.strip() and first.strip().endswith(command.strip()[-40:]):
        text = rest
    match = reader._prompt.search(text)
    if match:
        text = text[: match.start()] + ("\n" if match.group(0).startswith("\n") else "")
    return text


_OUTPUT_ATOMS = ["show logging", LONG + "#", LONG[:20] + "(config)#", "R2>", "\r\n", "\n", "\r", " ", "--More--",
                 " \x08\x08", "x", "a line of output", "#", ">", "(config)"]


@settings(max_examples=3000)
@given(st.lists(st.sampled_from(_OUTPUT_ATOMS), max_size=25), st.sampled_from(["show logging", "", "show version"]),
       st.integers(1, 9), st.booleans())
def test_an_output_is_cleaned_as_the_plain_rule_says(atoms, command, piece, long_output):
    from collector.sessions.prompts import PromptReader

    reader = PromptReader()
    reader._set_prompt_name(LONG, "R2")
    raw = ("y" * 6000 + "\n" if long_output else "") + "".join(atoms)  # long: the prompt is looked for near the end
    pieces = [raw[i:i + piece] for i in range(0, len(raw), piece)]
    assert reader._clean(command, pieces) == _plain_clean(reader._prompt, command, raw)


@settings(max_examples=400, deadline=None)
@given(_text, st.sampled_from(["show logging", "", "show version"]))
def test_the_prompt_is_cut_where_a_search_of_the_whole_output_cuts_it(raw, command):
    reader = PromptReader.__new__(PromptReader)
    reader._prompt = prompt_pattern("rtr1")
    assert reader._clean(command, [raw]) == _cut_with_a_whole_search(reader, command, raw)


# -- the login's typed-ahead answer ------------------------------------------------------

from collector.sessions.prompts import LOGIN_LINES, login_answer, prompt_before_echo  # noqa: E402

_NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,30}(enable|terminal|length|Password)?[A-Za-z0-9._-]{0,24}",
                       fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(name=_NAMES, enable=st.booleans(), banner=st.sampled_from(["", "####\n# Authorised #\n####\n"]))
def test_the_login_answer_ends_only_after_the_last_line_typed(name, enable, banner):
    """As IOS answers a paste of the login's lines: each echoed after the prompt it was
    read at. Whatever the hostname holds (`enable`, `terminal`...), the answer is not
    taken as complete before the last typed line's echo, and the prompt is learned whole."""
    lines = [*LOGIN_LINES, *(["enable"] if enable else [])]
    screens = [banner + f"{name}>"]
    for line in lines:
        screens.append(screens[-1] + line + "\n" + ("Password: " if line == "enable" else f"{name}>"))
    done = login_answer(lines[-1])
    assert [bool(done.search(text)) for text in screens] == [False] * len(lines) + [True]
    assert prompt_before_echo(screens[-1], LOGIN_LINES[-1]) == name
    assert prompt_before_echo(screens[len(LOGIN_LINES) - 1], LOGIN_LINES[-1]) is None  # not echoed yet


# -- answers to lines typed ahead ----------------------------------------------------------

from collector.sessions.prompts import ECHO_HEAD, typed_ahead_answers  # noqa: E402

_READS = ["show processes cpu | include CPU", "show debugging", "show crypto debug-condition", "show users",
          "show running-config | include ^logging buffered|^aaa authorization commands|^event manager applet|^line vty",
          "show logging | include Console.logging|Monitor.logging|Buffer.logging|Log.Buffer", "show version", "",
          " action 1.0 cli command \"enable\""]
# Output lines, prompt-looking ones among them: a banner or a log line may print the
# router's own prompt, even followed by a command, just not by the next line typed.
_LINES_OUT = st.lists(st.one_of(
    st.sampled_from(["", "Crypto ISAKMP debugging is on", "   2 vty 0     lab   idle  00:00:00 127.0.0.1",
                     LONG + "#", LONG + ">", LONG[:20] + "(config)#", LONG + "#show clock", "% Invalid input detected",
                     "Log Buffer (4096 bytes):", "#", "x" * 600]),
    st.text(alphabet=st.characters(blacklist_characters="\r\n\x08", blacklist_categories=("Cs",)), max_size=40)),
    max_size=6)


def _screen_of_paste(name: str, lines: list[str], outputs: list[list[str]], modes: list[str]) -> str:
    """What IOS shows for a paste: each line echoed after the prompt it was read at, its
    output, and at the end the prompt."""
    text = lines[0] + "\n"
    for i, line in enumerate(lines):
        text += "".join(o + "\n" for o in outputs[i])
        prompt = f"{name[:20]}({modes[i]})#" if modes[i] else f"{name}#"
        text += prompt + (lines[i + 1] + "\n" if i + 1 < len(lines) else "")
    return text


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_READS), min_size=1, max_size=6), st.data())
def test_each_typed_ahead_line_gets_its_own_answer_and_none_before_all_came(lines, data):
    outputs = [data.draw(_LINES_OUT) for _ in lines]
    # an output line made of the prompt and the next line's echo would be that line's echo
    for i, out in enumerate(outputs[:-1]):
        head = lines[i + 1].strip()[:ECHO_HEAD]
        outputs[i] = [o for o in out if not (o.startswith((LONG + "#", LONG + ">", LONG[:20] + "(")) and head in o)]
    modes = [data.draw(st.sampled_from(["", "config", "config-applet"])) for _ in lines]
    text = _screen_of_paste(LONG, lines, outputs, modes)
    starts, at_end = prompt_pattern(LONG, at_end=False), prompt_pattern(LONG)
    assert typed_ahead_answers(text, lines, starts, at_end) == ["".join(o + "\n" for o in out) for out in outputs]
    # read part way, up to the last line's echo: not complete
    last_echo = text.rfind(lines[-1] + "\n") if len(lines) > 1 else 0
    cut = data.draw(st.integers(0, max(0, last_echo - 1)))
    if len(lines) > 1:
        assert typed_ahead_answers(text[:cut], lines, starts, at_end) is None


def test_a_paste_read_while_the_router_is_on_the_second_line_is_not_complete():
    lines = ["show debugging", "show users"]
    starts, at_end = prompt_pattern("hub1", at_end=False), prompt_pattern("hub1")
    assert typed_ahead_answers("show debugging\nCrypto IPSEC debugging is on\nhub1#", lines, starts, at_end) is None
    done = "show debugging\nCrypto IPSEC debugging is on\nhub1#show users\n   Line  User\nhub1#"
    assert typed_ahead_answers(done, lines, starts, at_end) == ["Crypto IPSEC debugging is on\n", "   Line  User\n"]
