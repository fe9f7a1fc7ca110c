"""The shell's side of a router login: first prompt, terminal set-up, `enable`."""

from __future__ import annotations

import re

from collector.sessions.errors import AuthenticationFailed, CommandTimeout, ConnectFailed, LinesBusy, SessionDropped
from collector.sessions.prompts import (_ANY_PROMPT, _ENABLE_ASK, FIRST_PROMPT_NUDGE_SECONDS, LOGIN_LINES,
                                        PromptReader, login_answer, prompt_before_echo, screen)


class ShellLogin(PromptReader):
    """Readies a freshly opened shell for commands, through the lean reader: each step
    is answered as soon as the prompt stands at the end, with no fixed sleeps. The base
    of `DeviceSession`, which opens the channel and calls `_prepare_terminal`."""

    def _prepare_terminal(self) -> None:
        """The first prompt; then LOGIN_LINES, and `enable` at a `>` prompt when the host
        has a secret, typed ahead in one write: one round trip for them all. The secret is
        never typed ahead: it goes once `Password:` stands. The prompt is learned from the
        line where the router echoed the last of LOGIN_LINES (its prompt, then the echo),
        so a login banner line ending in `#` or `>` is never taken for it."""
        name, timeout = self.host.name, self.host.options.read_timeout
        try:
            try:
                self._read(_ANY_PROMPT, min(FIRST_PROMPT_NUDGE_SECONDS, timeout), "the first prompt")
            except CommandTimeout:  # some images print the prompt only after a Return
                self._unsettled = None
                self._send(b"\n", "login")
                self._read(_ANY_PROMPT, timeout, "the first prompt")
            # A banner line taken for the first prompt only decides whether `enable` is
            # typed ahead; the learned prompt decides below whether it is still needed.
            lines = [*LOGIN_LINES, *(["enable"] if self._wants_enable() else [])]
            self._send("".join(f"{line}\n" for line in lines).encode(), "the terminal set-up")
            answer = screen(self._read(login_answer(lines[-1]), timeout, "the terminal set-up"))
            last_line = answer.rsplit("\n", 1)[-1]
            learned = prompt_before_echo(answer, LOGIN_LINES[-1])
            if learned is None:
                raise ConnectFailed(name, f"unrecognised prompt after login: {last_line[-80:]!r}")
            self._set_prompt_name(learned)
            self._last_prompt = last_line.strip()
            if lines[-1] == "enable":
                self._enable(timeout, reply=answer)
            elif self._wants_enable():
                self._enable(timeout)
        except SessionDropped:
            raise LinesBusy(name, "session closed before a prompt (all vty lines busy?)") from None
        except CommandTimeout as exc:
            raise ConnectFailed(name, f"no prompt within {timeout:.0f}s after login ({exc.reason})") from None

    def _wants_enable(self) -> bool:
        return bool(self.host.secret) and self._last_prompt.endswith(">")

    def _enable(self, timeout: float, reply: str | None = None) -> None:
        """`enable`, and its secret when asked; `reply` is the answer to an `enable` that
        was typed ahead. Only a refused secret is an AuthenticationFailed; a timeout or a
        drop here is a transient failure of the login like any other."""
        name = self.host.name
        asked = re.compile(f"{_ENABLE_ASK.pattern}|{self._prompt.pattern}")  # type: ignore[union-attr]
        if reply is None:
            self._send(b"enable\n", "enable")
            reply = screen(self._read(asked, timeout, "enable"))
        if _ENABLE_ASK.search(reply):
            self._send(self.host.secret.reveal().encode() + b"\n", "the enable secret")  # type: ignore[union-attr]
            reply = screen(self._read(asked, timeout, "the enable secret"))
            if _ENABLE_ASK.search(reply):  # asked again: the secret was refused
                raise AuthenticationFailed(name, "enable failed (enable secret refused)")
        last = reply.rsplit("\n", 1)[-1].strip()
        if not last.endswith("#"):
            raise AuthenticationFailed(name, f"enable failed (prompt still {last[-40:]!r})")
        self._last_prompt = last
