"""Prompts and the lean reader: what ends an IOS command's output, read off the channel.

Write a line, read until the device prompt stands at the very end of the buffer and
nothing more is waiting: no fixed sleeps, and a prompt-looking line inside a long output
never ends it. The prompt is learned from what the router prints (the whole hostname, up
to 63 characters, in exec mode; its first 20 before `(config...)#`)."""

from __future__ import annotations

import codecs
import re
import socket
import time
from collections.abc import Sequence

import paramiko

from collector.inventory import Host
from collector.sessions.errors import CommandTimeout, SessionDropped

# What IOS prints when it refuses a command line, in exec and configuration mode; AAA
# command authorization prints its refusal without a `%`.
_REFUSAL = (r"(?:% ?(Invalid input detected|Incomplete command|Ambiguous command|Unknown command)"
            r"|(Command authorization failed))")
_REFUSED = re.compile("^" + _REFUSAL, re.M)
# The same at a line start after the first: a search led by a literal newline, which the
# regex engine scans for in C (a `^` in MULTILINE is tried at every offset: slow on a
# whole `show logging`, read before every arming)
_REFUSED_LATER = re.compile("\n" + _REFUSAL)
_PAGER = "--More--"
# What IOS sends to wipe the pager marker: spaces and backspaces ending on a backspace.
# The marker stands at the start of a line, so after the wipe the next line (or the
# prompt) starts there.
_ERASE = re.compile(r"[ \x08]+\x08")
_TAIL = 512  # bytes of the buffer end searched for the prompt

# A timed-out command is given at least this long (or twice its own timeout) to bring
# the prompt back before the session is given up.
MIN_SETTLE_SECONDS = 10.0

# -- prompts ----------------------------------------------------------------------------

# What IOS accepts as a hostname (letters, digits, dots, dashes; 63 at most). Only a
# learned name of this shape is ever put into a pattern.
_HOSTNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
# IOS prints the whole hostname in exec mode but only its first 20 characters before
# `(config...)#` (netmiko cuts its base prompt to 16 for that reason, which then matches
# no exec prompt of a longer name).
CONFIG_PROMPT_CHARS = 20
_MODE = r"\([A-Za-z0-9_.:/ -]+\)"
# Any last line that ends like a prompt: used only at login, before the name is known.
_ANY_PROMPT = re.compile(r"(?:^|\n)[^\n]{1,120}[>#] ?$")
# What the login types ahead in one write once the first prompt stands (`enable` after
# them when the router wants one): one round trip for them all, not one each.
LOGIN_LINES = ("terminal width 511", "terminal length 0")
FIRST_PROMPT_NUDGE_SECONDS = 2.0  # no prompt by then: send a Return, as a person would
_ENABLE_ASK = re.compile(r"(?:^|\n)[^\n]*[Pp]assword: ?$")
_HOSTNAME_LINE = re.compile(r"^\s*(no\s+)?hostname(?:\s+(\S+))?\s*$", re.I)
IOS_DEFAULT_HOSTNAME = "Router"


def prompt_pattern(*names: str, at_end: bool = True) -> re.Pattern[str]:
    """The prompt of a router called any of `names`, in exec and configuration modes,
    standing at the end of the text (`at_end=False`: at the start of any line, with what
    was typed after it).

    Raises:
        Nothing: names are escaped, any text makes a valid pattern.
    """
    alternatives = []
    for name in dict.fromkeys(names):
        alternatives.append(re.escape(name) + f"(?:{_MODE})?")
        short = name[:CONFIG_PROMPT_CHARS]
        if short != name:
            alternatives.append(re.escape(short) + _MODE)
    return re.compile(r"(?:^|\n)(?:" + "|".join(alternatives) + r")[>#]" + (r" ?$" if at_end else ""))


def prompt_name(line: str) -> str | None:
    """The hostname in a prompt line (`name>`, `name#`, `name(config)#`), or None when
    the line is not the prompt of a valid IOS hostname.

    Raises:
        Nothing: a line that is no prompt gives None.
    """
    line = line.strip()
    if not line or line[-1] not in ">#":
        return None
    name = re.sub(_MODE + "$", "", line[:-1])
    return name if _HOSTNAME.fullmatch(name) else None


def login_answer(last_typed: str) -> re.Pattern[str]:
    """The end of the answer to lines typed ahead at login: the last of them echoed after
    a prompt, as the rest of its line (a hostname may contain the word), then a prompt, or
    `Password:` (asked by `enable`), standing at the end."""
    return re.compile(r"[>#] ?" + re.escape(last_typed) + r"[ \t]*\n(?:[^\n]*\n)*?[^\n]*(?:[>#]|[Pp]assword:) ?$")


def prompt_before_echo(text: str, typed: str) -> str | None:
    """The hostname in the prompt the router printed before echoing `typed` (IOS prints
    the prompt, then echoes the line typed at it, on one line), or None when no line
    of `text` (as the screen shows it) is such a prompt and echo.

    Raises:
        Nothing: text without that line gives None.
    """
    for line in reversed(text.split("\n")):
        line = line.rstrip()
        if line.endswith(typed) and len(line) > len(typed):
            return prompt_name(line[:-len(typed)])
    return None


# How much of a typed-ahead line its echo must begin with to count as that line's echo
# (a long line's echo may be wrapped or scrolled at the terminal's width).
ECHO_HEAD = 24


def typed_ahead_answers(text: str, lines: Sequence[str], starts: re.Pattern[str],
                        at_end: re.Pattern[str]) -> list[str] | None:
    """Each typed-ahead line's answer in `text` (as the screen shows it, from the first
    line's echo on), or None while they have not all come.

    IOS takes typed-ahead lines one at a time: the prompt, the line's echo, what it says
    about it. A line's answer runs from the end of its echo to the prompt that the next
    line's echo follows (`starts`: the prompt at a line start), the last one's to the
    prompt standing at the end (`at_end`). A prompt-looking line in an output (a banner,
    a log line) is not followed by the next line's echo and ends nothing.

    Raises:
        Nothing: text that does not hold every answer gives None.
    """
    cuts = []  # (where an answer ends, where the next one begins)
    pos = _after_echo(text, 0, lines[0])
    begin = pos
    for line in lines[1:]:
        head = line.strip()[:ECHO_HEAD]
        for match in starts.finditer(text, max(pos - 1, 0)):  # from the newline that ends the echo
            echo = match.end()
            while text[echo:echo + 1] in (" ", "\t"):
                echo += 1
            if text.startswith(head, echo):
                cuts.append((match.start() + (1 if match.group(0).startswith("\n") else 0),
                             _after_echo(text, echo, line)))
                pos = cuts[-1][1]
                break
        else:
            return None
    last_line = text.rfind("\n", pos, len(text) - 1)
    end = at_end.search(text, last_line if last_line >= 0 else max(pos - 1, 0))
    if end is None:
        return None
    cuts.append((end.start() + (1 if end.group(0).startswith("\n") else 0), len(text)))
    answers = []
    for end_of_answer, next_begin in cuts:
        answers.append(text[begin:max(begin, end_of_answer)])
        begin = next_begin
    return answers


def _after_echo(text: str, at: int, line: str) -> int:
    """Where the answer to `line` begins: after its echo's line, when the line at `at` is it."""
    newline = text.find("\n", at)
    echoed, typed = text[at:newline if newline >= 0 else len(text)].strip(), line.strip()
    if echoed == typed or typed and echoed and (echoed.startswith(typed[:ECHO_HEAD]) or echoed.endswith(typed[-40:])):
        return newline + 1 if newline >= 0 else len(text)
    return at


def hostname_set_by(line: str) -> str | None:
    """The hostname a configuration line sets (`hostname X`, `no hostname`), if any."""
    match = _HOSTNAME_LINE.match(line)
    if not match:
        return None
    if match.group(1):
        return IOS_DEFAULT_HOSTNAME
    name = match.group(2)
    return name if name and _HOSTNAME.fullmatch(name) else None


def screen(text: str) -> str:
    """Text as the screen shows it: no CR, pager wipes applied."""
    return _ERASE.sub("", text.replace("\r", ""))


def refusal_in(output: str) -> str | None:
    """The refusal IOS printed in a command's output (`Invalid input detected`,
    `Command authorization failed`, ...), or None when the line was accepted.

    Raises:
        Nothing: an accepted line gives None.
    """
    match = _REFUSED.match(output) or _REFUSED_LATER.search(output)
    return (match.group(1) or match.group(2)) if match else None


class PromptReader:
    """Reads one router's shell channel up to its prompt. The base of `DeviceSession`,
    which owns the channel (`_channel`) and `close()`; not thread-safe, like the session.

    State: `_prompt` the learned prompt pattern, `_last_prompt` the prompt line that
    ended the last exchange, `prompt_name` the hostname, `_unsettled` (buffer tail,
    settle timeout) after a `CommandTimeout` until `settle()` has read the prompt back."""

    host: Host  # set by the session

    def __init__(self) -> None:
        self._channel: paramiko.Channel | None = None
        self._prompt: re.Pattern[str] | None = None
        self._last_prompt = ""  # the prompt line that ended the last exchange
        self.prompt_name = ""
        self._prompt_names: tuple[str, ...] = ()
        self._starts: re.Pattern[str] | None = None  # the prompt at any line start (typed-ahead reads), made on first use
        self._unsettled: tuple[str, float] | None = None  # (buffer tail, settle timeout) after a timeout

    def close(self) -> None:  # the session's: a lost channel closes it
        raise NotImplementedError

    def _set_prompt_name(self, name: str, *also: str) -> None:
        self.prompt_name = name
        self._prompt_names = (name, *also)
        self._prompt = prompt_pattern(name, *also)
        self._starts = None

    def _relearn_prompt(self) -> None:
        learned = prompt_name(self._last_prompt)
        if learned is not None:
            self._set_prompt_name(learned)

    def settle(self, timeout: float | None = None) -> str:
        """After a CommandTimeout: read until the prompt returns, and return what came
        (the late rest of the timed-out command's output). A no-op when settled.

        Raises:
            SessionDropped: the prompt did not come back in time; the session is closed."""
        if self._unsettled is None:
            return ""
        if self._channel is None:
            self._unsettled = None
            raise SessionDropped(self.host.name, "session is not open")
        tail, default_timeout = self._unsettled
        timeout = default_timeout if timeout is None else timeout
        try:
            late = self._read(self._prompt, timeout, "the prompt after a timed-out command", tail=tail)  # type: ignore[arg-type]
        except CommandTimeout:
            self._unsettled = None
            self.close()
            raise SessionDropped(self.host.name, f"no prompt {timeout:.0f}s after a timed-out command; session closed") from None
        self._unsettled = None
        return screen(late)

    def _send(self, data: bytes, what: str, command: str | None = None) -> None:
        try:
            self._channel.sendall(data)  # type: ignore[union-attr]
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self.close()
            raise SessionDropped(self.host.name, f"session lost during {what}: {exc or type(exc).__name__}",
                                 command=command) from None

    def _exchange(self, command: str, timeout: float) -> str:
        self._send((command + "\n").encode(), repr(command), command)
        pieces = self._read_pieces(self._prompt, timeout, repr(command), command=command)  # type: ignore[arg-type]
        return self._clean(command, pieces)

    def _exchange_typed_ahead(self, lines: Sequence[str], timeout: float) -> list[str]:
        """`lines` sent in one write, as a paste is: IOS takes them one at a time, each
        answered by its echo, what it says about it and the prompt. Read until every answer
        has come (`typed_ahead_answers`; `timeout` for them all).

        Raises:
            SessionDropped: the session failed, or the answers did not all come in time:
                the session is then closed, since the router may still be answering the
                lines after the one it is on, which a later read would take for its own."""
        what = f"{len(lines)} lines typed ahead"
        self._send(("".join(line + "\n" for line in lines)).encode(), what, lines[0])
        if self._starts is None:
            self._starts = prompt_pattern(*self._prompt_names, at_end=False)
        deadline = time.monotonic() + timeout
        text = ""
        while True:  # each read ends at a prompt with nothing more waiting: the router may be mid-paste
            try:
                pieces = self._read_pieces(self._prompt, max(deadline - time.monotonic(), 0.001), what,  # type: ignore[arg-type]
                                           command=lines[0])
            except CommandTimeout as exc:
                self._unsettled = None
                self.close()
                raise SessionDropped(self.host.name, f"{exc.reason}; session closed (the router may still be "
                                     "answering the lines typed ahead)", output=text + (exc.output or ""),
                                     command=lines[0]) from None
            text += screen("".join(pieces))
            answers = typed_ahead_answers(text, lines, self._starts, self._prompt)  # type: ignore[arg-type]
            if answers is not None:
                return answers

    def _read(self, done: re.Pattern[str], timeout: float, what: str, *, tail: str = "",
              command: str | None = None) -> str:
        """Read until `done` matches the end of what the screen shows and nothing more is
        waiting. `tail` is text already received (when settling after a timeout)."""
        return "".join(self._read_pieces(done, timeout, what, tail=tail, command=command))

    def _read_pieces(self, done: re.Pattern[str], timeout: float, what: str, *, tail: str = "",
                     command: str | None = None) -> list[str]:
        """`_read`'s text as the pieces it arrived in (a 10 MB output is joined once, by
        `_clean`)."""
        channel = self._channel
        assert channel is not None
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        chunks: list[str] = []
        deadline = time.monotonic() + timeout
        try:
            if tail and done.search(screen(tail)) and not channel.recv_ready():
                return []
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._unsettled = (tail, max(2 * timeout, MIN_SETTLE_SECONDS))
                    raise CommandTimeout(self.host.name, f"no prompt after {timeout:.0f}s for {what}",
                                         output="".join(chunks), command=command)
                channel.settimeout(remaining)
                try:
                    data = channel.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    self.close()
                    raise SessionDropped(self.host.name, f"session closed during {what}", output="".join(chunks),
                                         command=command)
                piece = decoder.decode(data)
                tail = (tail + piece)[-_TAIL:]
                if _PAGER in tail:  # a pager despite `terminal length 0`: page on, drop the marker
                    channel.sendall(b" ")
                    piece = piece.replace(_PAGER, "")
                    tail = tail.replace(_PAGER, "")
                chunks.append(piece)
                match = done.search(screen(tail))
                if match and not channel.recv_ready():
                    self._last_prompt = match.group(0).strip()
                    break
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self.close()
            raise SessionDropped(self.host.name, f"session lost during {what}: {exc or type(exc).__name__}",
                                 output="".join(chunks), command=command) from None
        return chunks

    def _clean(self, command: str, pieces: list[str]) -> str:
        """The output without CRs, pager marks, the echo of the command and the prompt.
        Made with at most two copies of it alive at once (a `show logging` is 10 MB): each
        step below rebinds `text`, and the echo and the prompt go in one slice."""
        text = "".join(pieces)
        pieces.clear()
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "")
        if _PAGER in text:
            text = text.replace(_PAGER, "")
        if "\x08" in text:  # a marker split over two reads is whole only here
            text = _ERASE.sub("", text)
        start = 0
        first, newline = text.find("\n"), "\n" in text
        first_line = text[:first] if newline else text
        if command.strip() and first_line.strip().endswith(command.strip()[-40:]):
            start = first + 1 if newline else len(text)  # the router's echo of the command line
        assert self._prompt is not None
        # The prompt is one line at the end (or before a last newline): searched from the
        # newline before that line, not across a whole 10 MB `show logging`. With the echo
        # cut, its newline stands for the start of the text (the pattern's `^`).
        before_last = text.rfind("\n", start, len(text) - 1)
        match = self._prompt.search(text, before_last if before_last >= 0 else max(start - 1, 0))
        end = len(text)
        if match:
            end = match.start() + (1 if match.group(0).startswith("\n") else 0)
        return text if (start, end) == (0, len(text)) else text[start:end]
