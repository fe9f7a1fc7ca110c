from __future__ import annotations

import logging
import pickle
import textwrap

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail

from collector.credentials import MASK, CredentialError, CredentialResolver, Secret, parse_reference
from collector.inventory import InventoryError, load_inventory


# -- Secret ------------------------------------------------------------------------------


def test_secret_never_shows_its_value():
    s = Secret("hunter2-very-secret")
    shown = [repr(s), str(s), f"{s}", f"{s:>20}", "%s" % s, "%r" % (s,), repr([s]), repr({"p": s})]
    for text in shown:
        assert "hunter2" not in text
    assert str(s) == MASK
    assert s.reveal() == "hunter2-very-secret"


def test_secret_in_a_log_record(caplog):
    log = logging.getLogger("test.credentials")
    with caplog.at_level(logging.INFO):
        log.info("connecting with %s / %r", Secret("pw-in-log"), Secret("pw-in-log"))
    assert "pw-in-log" not in caplog.text
    assert MASK in caplog.text


def test_secret_equality_and_truth():
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert Secret("a") != "a"  # never equal to the plain text: no accidental comparisons
    assert not Secret("")
    assert len(Secret("abc")) == 3
    assert hash(Secret("x")) == hash(Secret("x"))


def test_secret_wraps_text_only():
    with pytest.raises(TypeError):
        Secret(123)  # type: ignore[arg-type]


def test_secret_survives_pickling_for_worker_processes():
    assert pickle.loads(pickle.dumps(Secret("p"))).reveal() == "p"


# -- parsing references ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, kind",
    [
        ("plain-password", "plain"),
        ("pa$$word", "plain"),
        ("$notavar", "plain"),
        ("${ROUTER_PW}", "env"),
        ("pre-${A}-post", "env"),
        ("$${literal}", "env"),
        ("keyring:collector/netops", "keyring"),
        ("prompt", "prompt"),
        ("prompted", "plain"),
    ],
)
def test_reference_kinds(text, kind):
    assert parse_reference(text).kind == kind


def test_keyring_service_may_contain_slashes():
    ref = parse_reference("keyring:corp/vpn/routers/netops")
    assert (ref.service, ref.user) == ("corp/vpn/routers", "netops")


@pytest.mark.parametrize("text", ["keyring:", "keyring:service-only", "keyring:/user", "keyring:svc/"])
def test_bad_keyring_reference(text):
    with pytest.raises(ValueError, match="keyring:SERVICE/USER"):
        parse_reference(text)


def test_bad_variable_name():
    with pytest.raises(ValueError, match="bad environment variable name"):
        parse_reference("${1ABC}")


def test_variables_listed():
    assert parse_reference("${A}x${B}$${C}").variables == ("A", "B")


# -- resolving ---------------------------------------------------------------------------


def test_environment_whole_embedded_and_escaped():
    r = CredentialResolver(environ={"A": "alpha", "B": ""})
    assert r.resolve("${A}", field="password", owner="host r1") == "alpha"
    assert r.resolve("x${A}y${B}z", field="password", owner="host r1") == "xalphayz"
    assert r.resolve("$${A}", field="password", owner="host r1") == "${A}"
    assert r.resolve("pa$$w0rd", field="password", owner="host r1") == "pa$$w0rd"


def test_unset_variable_is_named():
    r = CredentialResolver(environ={})
    with pytest.raises(CredentialError, match=r"^environment variable ROUTER_PW is not set$"):
        r.resolve("${ROUTER_PW}", field="password", owner="host r1")


class MemoryKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def __init__(self, entries: dict[tuple[str, str], str]):
        super().__init__()
        self.entries = entries
        self.lookups = 0

    def get_password(self, service, username):
        self.lookups += 1
        return self.entries.get((service, username))

    def set_password(self, service, username, password):
        self.entries[(service, username)] = password

    def delete_password(self, service, username):
        self.entries.pop((service, username), None)


@pytest.fixture
def memory_keyring():
    previous = keyring.get_keyring()
    backend = MemoryKeyring({("collector/lab", "netops"): "from-keyring"})
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def test_keyring_lookup_is_cached(memory_keyring):
    r = CredentialResolver()
    assert r.resolve("keyring:collector/lab/netops", field="password", owner="host a") == "from-keyring"
    assert r.resolve("keyring:collector/lab/netops", field="password", owner="host b") == "from-keyring"
    assert memory_keyring.lookups == 1


def test_keyring_missing_entry(memory_keyring):
    with pytest.raises(CredentialError, match=r"no keyring entry for service 'collector/lab' user 'nobody'"):
        CredentialResolver().resolve("keyring:collector/lab/nobody", field="password", owner="host a")


def test_keyring_without_backend_is_a_clear_error():
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        with pytest.raises(CredentialError, match=r"^no usable keyring backend .*use \$\{ENV_VAR\}"):
            CredentialResolver().resolve("keyring:svc/user", field="password", owner="host a")
    finally:
        keyring.set_keyring(previous)


def test_keyring_backend_failure_is_one_line():
    def broken(service: str, user: str) -> str | None:
        raise RuntimeError("dbus said no\nsecond line")

    with pytest.raises(CredentialError) as info:
        CredentialResolver(keyring_lookup=broken).resolve("keyring:s/u", field="password", owner="host a")
    assert str(info.value) == "keyring lookup failed: RuntimeError: dbus said no second line"


def test_prompt_once_per_field_and_owner():
    asked = []

    def answer(message):
        asked.append(message)
        return "typed"

    r = CredentialResolver(prompt=answer)
    for owner in ("group hubs", "group hubs", "host r9"):
        assert r.resolve("prompt", field="password", owner=owner) == "typed"
    r.resolve("prompt", field="secret", owner="group hubs")
    assert asked == ["password for group hubs: ", "password for host r9: ", "secret for group hubs: "]


def test_terminal_prompt_uses_getpass_for_passwords(monkeypatch):
    calls = []

    class Tty:
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stdin", Tty())
    monkeypatch.setattr("getpass.getpass", lambda message: calls.append(("getpass", message)) or "hidden")
    monkeypatch.setattr("builtins.input", lambda message: calls.append(("input", message)) or "visible")
    r = CredentialResolver()
    assert r.resolve("prompt", field="password", owner="host r1") == "hidden"
    assert r.resolve("prompt", field="username", owner="host r1", hidden=False) == "visible"
    assert calls == [("getpass", "password for host r1: "), ("input", "username for host r1: ")]


def test_prompt_without_tty(monkeypatch):
    class NoTty:
        def isatty(self):
            return False

    monkeypatch.setattr("sys.stdin", NoTty())
    with pytest.raises(CredentialError, match="needs an interactive terminal"):
        CredentialResolver().resolve("prompt", field="password", owner="host r1")


# -- through the inventory ---------------------------------------------------------------


def test_inventory_with_keyring(tmp_path, memory_keyring):
    path = tmp_path / "inventory.yaml"
    path.write_text(textwrap.dedent("""
        defaults:
          username: netops
          password: keyring:collector/lab/netops
          platform: cisco_xe
        hosts:
          asr1: {hostname: 10.0.0.1}
          asr2: {hostname: 10.0.0.2, secret: keyring:collector/lab/missing}
    """))
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert str(info.value) == (
        f"{path}:8: host asr2: secret: no keyring entry for service 'collector/lab' user 'missing'"
    )
    memory_keyring.set_password("collector/lab", "missing", "enable-from-keyring")
    inv = load_inventory(path)
    assert inv.hosts["asr1"].password.reveal() == "from-keyring"
    assert inv.hosts["asr2"].secret.reveal() == "enable-from-keyring"


# ---------------------------------------------------------------- every source registers its secret


@pytest.mark.parametrize("source", ["plain", "env", "keyring", "prompt"])
def test_a_secret_from_every_source_is_removed_from_logs(source, tmp_path, memory_keyring):
    import io
    import json

    from collector.redact import REDACTED, install_secret_filter

    secret = f"{source} 'p\\a\"ss $word"
    memory_keyring.entries[("collector", "ops")] = secret
    value = {"plain": secret, "env": "${ROUTER_SECRET}", "keyring": "keyring:collector/ops", "prompt": "prompt"}[source]
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(f"defaults: {{username: ops, platform: cisco_ios, password: {json.dumps(value)}}}\n"
                         "hosts:\n  r1: {hostname: 127.0.0.1}\n")
    inv = load_inventory(inventory, environ={"ROUTER_SECRET": secret}, prompt=lambda message: secret)
    assert inv.hosts["r1"].password.reveal() == secret
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    library = logging.getLogger("paramiko.transport")
    old_level, library.level = library.level, logging.DEBUG  # the CLI quiets paramiko below -vv
    logging.getLogger().addHandler(handler)
    try:
        install_secret_filter()
        library.debug("auth with %r / %s", secret.encode(), secret)
    finally:
        logging.getLogger().removeHandler(handler)
        library.setLevel(old_level)
    text = stream.getvalue()
    assert secret not in text and repr(secret.encode())[2:-1] not in text
    assert text.count(REDACTED) >= 2  # (other tests may have registered short secrets too)
