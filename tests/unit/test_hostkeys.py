from __future__ import annotations

import base64
import hashlib
import io
import logging
import socket
import stat
import threading
from pathlib import Path

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from collector.hostkeys import (
    HostKeyChangedError,
    HostKeyUnknownError,
    KnownHosts,
    KnownHostsFileError,
    apply_host_key_policy,
    default_known_hosts_path,
    explain_bad_host_key,
    fingerprint,
    host_key_name,
)


def ed25519_key() -> paramiko.PKey:
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    return paramiko.Ed25519Key.from_private_key(io.StringIO(pem.decode()))


@pytest.fixture(scope="module")
def rsa_key() -> paramiko.PKey:
    return paramiko.RSAKey.generate(2048)


@pytest.fixture
def store(tmp_path) -> KnownHosts:
    return KnownHosts(tmp_path / "state" / "known_hosts")


def openssh_fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(base64.b64decode(key.get_base64())).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


# -- the file ------------------------------------------------------------------------------


def test_fingerprint_is_openssh_sha256(rsa_key):
    key = ed25519_key()
    assert fingerprint(key) == openssh_fingerprint(key)
    assert fingerprint(rsa_key) == openssh_fingerprint(rsa_key)
    assert fingerprint(key).startswith("SHA256:") and not fingerprint(key).endswith("=")


def test_key_names_follow_openssh():
    assert host_key_name("10.0.0.1", 22) == "10.0.0.1"
    assert host_key_name("10.0.0.1", 2222) == "[10.0.0.1]:2222"
    assert host_key_name("2001:db8::1", 830) == "[2001:db8::1]:830"


def test_add_writes_openssh_lines_and_lookup_reads_them(store, rsa_key):
    key = ed25519_key()
    store.add("10.0.0.1", 22, key)
    store.add("10.0.0.2", 2222, rsa_key)
    lines = store.path.read_text().splitlines()
    assert lines == [
        f"10.0.0.1 ssh-ed25519 {key.get_base64()}",
        f"[10.0.0.2]:2222 ssh-rsa {rsa_key.get_base64()}",
    ]
    assert store.lookup("10.0.0.1", 22) == {"ssh-ed25519": key}
    assert store.lookup("10.0.0.2", 2222) == {"ssh-rsa": rsa_key}
    assert store.lookup("10.0.0.2", 22) == {}
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_openssh_can_read_what_we_write(store):
    key = ed25519_key()
    store.add("router.example.net", 2022, key)
    loaded = paramiko.HostKeys(str(store.path))
    assert loaded.lookup("[router.example.net]:2022")["ssh-ed25519"] == key


def test_add_same_key_twice_is_a_no_op(store):
    key = ed25519_key()
    store.add("r", 22, key)
    store.add("r", 22, key)
    assert len(store.path.read_text().splitlines()) == 1


def test_add_never_replaces_a_different_key(store):
    old, new = ed25519_key(), ed25519_key()
    store.add("r", 22, old)
    with pytest.raises(HostKeyChangedError) as info:
        store.add("r", 22, new)
    assert info.value.known_fingerprint == fingerprint(old)
    assert info.value.offered_fingerprint == fingerprint(new)
    assert store.lookup("r", 22) == {"ssh-ed25519": old}


def test_other_lines_are_preserved(store):
    hashed_key = ed25519_key()
    hashed_name = paramiko.HostKeys.hash_host("10.9.9.9")
    original = (
        "# managed by hand\n"
        "@cert-authority *.example.net ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleOnlyNotARealKeyxxxxxxxxxxxxxxxxxx\n"
        "10.5.5.5 sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29t\n"
        f"{hashed_name} ssh-ed25519 {hashed_key.get_base64()}\n"
        "garbage line\n"
    )
    store.path.parent.mkdir(parents=True)
    store.path.write_text(original)
    assert store.lookup("10.9.9.9", 22) == {"ssh-ed25519": hashed_key}  # hashed names work
    new = ed25519_key()
    store.add("10.0.0.7", 22, new)
    assert store.path.read_text() == original + f"10.0.0.7 ssh-ed25519 {new.get_base64()}\n"


def test_remove(store, rsa_key):
    key = ed25519_key()
    store.add("r", 22, key)
    store.add("r", 22, rsa_key)
    store.add("s", 22, ed25519_key())
    assert store.remove("r", 22) == 2
    assert store.lookup("r", 22) == {}
    assert store.lookup("s", 22) != {}
    assert store.remove("r", 22) == 0


def test_lookup_sees_changes_made_by_another_writer(store, tmp_path):
    other = KnownHosts(store.path)
    assert store.lookup("r", 22) == {}
    key = ed25519_key()
    other.add("r", 22, key)
    assert store.lookup("r", 22) == {"ssh-ed25519": key}


def test_concurrent_adds_lose_nothing(store):
    keys = {f"10.1.0.{i}": ed25519_key() for i in range(40)}
    stores = [store, KnownHosts(store.path)]
    start = threading.Barrier(len(keys))

    def add(i: int, host: str, key: paramiko.PKey) -> None:
        start.wait()
        stores[i % 2].add(host, 22, key)

    threads = [threading.Thread(target=add, args=(i, h, k)) for i, (h, k) in enumerate(keys.items())]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fresh = KnownHosts(store.path)
    for host, key in keys.items():
        assert fresh.lookup(host, 22) == {"ssh-ed25519": key}
    assert len(store.path.read_text().splitlines()) == len(keys)
    assert not [p for p in store.path.parent.iterdir() if p.name.startswith(".known_hosts.")]  # no temp files left


def test_default_path(monkeypatch, tmp_path):
    monkeypatch.setenv("COLLECTOR_STATE", str(tmp_path / "st"))
    assert default_known_hosts_path() == tmp_path / "st" / "known_hosts"
    assert KnownHosts.default().path == tmp_path / "st" / "known_hosts"
    monkeypatch.delenv("COLLECTOR_STATE")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_known_hosts_path() == tmp_path / "xdg" / "collector" / "known_hosts"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_known_hosts_path() == tmp_path / "home" / ".local" / "state" / "collector" / "known_hosts"


# -- policies, through a real SSH handshake over a socket pair --------------------------


class _AcceptPassword(paramiko.ServerInterface):
    def get_allowed_auths(self, username):
        return "password"

    def check_auth_password(self, username, password):
        return paramiko.AUTH_SUCCESSFUL


def handshake(server_key: paramiko.PKey, store: KnownHosts, policy: str, *, host: str = "10.0.0.1", port: int = 22,
              client: paramiko.SSHClient | None = None) -> None:
    """Connect a paramiko client to an in-process SSH server offering `server_key`."""
    client_sock, server_sock = socket.socketpair()
    server = paramiko.Transport(server_sock)
    server.add_server_key(server_key)

    def serve() -> None:
        try:
            server.start_server(server=_AcceptPassword())
        except (paramiko.SSHException, EOFError, OSError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = client or paramiko.SSHClient()
    try:
        apply_host_key_policy(client, host, port, policy, store)
        client.connect(host, port, sock=client_sock, username="u", password="p", look_for_keys=False,
                       allow_agent=False, timeout=5, banner_timeout=5, auth_timeout=5)
    finally:
        client.close()
        server.close()
        client_sock.close()
        server_sock.close()
        thread.join(5)


def test_tofu_records_the_first_key_and_accepts_it_again(store, caplog):
    key = ed25519_key()
    with caplog.at_level(logging.WARNING, logger="collector.hostkeys"):
        handshake(key, store, "tofu", port=2222)
    assert store.lookup("10.0.0.1", 2222) == {"ssh-ed25519": key}
    assert fingerprint(key) in caplog.text and "10.0.0.1:2222" in caplog.text
    handshake(key, store, "tofu", port=2222)
    assert len(store.path.read_text().splitlines()) == 1


def test_tofu_refuses_a_changed_key_naming_both_fingerprints(store):
    old, new = ed25519_key(), ed25519_key()
    store.add("10.0.0.1", 22, old)
    with pytest.raises(HostKeyChangedError) as info:
        handshake(new, store, "tofu")
    err = info.value
    assert (err.host, err.port) == ("10.0.0.1", 22)
    assert err.known_fingerprint == fingerprint(old) and err.offered_fingerprint == fingerprint(new)
    text = str(err)
    assert "10.0.0.1:22" in text and fingerprint(old) in text and fingerprint(new) in text
    assert "\n" not in text
    assert store.lookup("10.0.0.1", 22) == {"ssh-ed25519": old}  # not overwritten


def test_a_key_of_another_type_counts_as_changed(store, rsa_key):
    store.add("10.0.0.1", 22, ed25519_key())
    with pytest.raises(HostKeyChangedError) as info:
        handshake(rsa_key, store, "tofu")
    assert info.value.offered_fingerprint == fingerprint(rsa_key)
    assert info.value.known_type == "ssh-ed25519" and info.value.offered_type == "ssh-rsa"


def test_strict_refuses_unknown_and_accepts_known(store):
    key = ed25519_key()
    with pytest.raises(HostKeyUnknownError) as info:
        handshake(key, store, "strict")
    assert fingerprint(key) in str(info.value) and "strict" in str(info.value)
    assert store.lookup("10.0.0.1", 22) == {}
    store.add("10.0.0.1", 22, key)
    handshake(key, store, "strict")


def test_strict_refuses_a_changed_key(store):
    store.add("10.0.0.1", 22, ed25519_key())
    with pytest.raises(HostKeyChangedError):
        handshake(ed25519_key(), store, "strict")


def test_accept_any_accepts_anything_and_records_nothing(store):
    store.add("10.0.0.1", 22, ed25519_key())
    handshake(ed25519_key(), store, "accept-any")
    handshake(ed25519_key(), store, "accept-any", host="10.0.0.2")
    assert store.lookup("10.0.0.2", 22) == {}


def test_keys_preloaded_in_the_client_do_not_bypass_the_policy(store):
    old, new = ed25519_key(), ed25519_key()
    store.add("10.0.0.1", 22, old)
    client = paramiko.SSHClient()
    client.get_host_keys().add("10.0.0.1", "ssh-ed25519", new)  # e.g. from another file
    with pytest.raises(HostKeyChangedError):
        handshake(new, store, "tofu", client=client)


def test_unknown_policy_name(store):
    with pytest.raises(ValueError, match="unknown host_key_policy 'yes'"):
        apply_host_key_policy(paramiko.SSHClient(), "h", 22, "yes", store)


def test_explain_bad_host_key(store):
    known, offered = ed25519_key(), ed25519_key()
    exc = paramiko.BadHostKeyException("[10.0.0.1]:2222", offered, known)
    err = explain_bad_host_key(exc, "10.0.0.1", 2222, store)
    assert isinstance(err, HostKeyChangedError)
    assert (err.known_fingerprint, err.offered_fingerprint) == (fingerprint(known), fingerprint(offered))
    assert str(store.path) in str(err)


def test_changed_key_error_positional_signature():
    err = HostKeyChangedError("r1.example.net", 22, "SHA256:old", "SHA256:new")
    assert str(err).startswith("host key for r1.example.net:22 has CHANGED: known SHA256:old, offered SHA256:new;")


def test_store_path_is_created_on_first_write(tmp_path):
    store = KnownHosts(tmp_path / "a" / "b" / "known_hosts")
    assert store.lookup("x", 22) == {}
    store.add("x", 22, ed25519_key())
    assert Path(tmp_path / "a" / "b" / "known_hosts").is_file()


def test_a_state_folder_that_cannot_hold_the_file_is_named_as_such(tmp_path):
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state folder should be\n")
    store = KnownHosts(blocker / "known_hosts")
    with pytest.raises(KnownHostsFileError) as err:
        store.add("x", 22, ed25519_key())
    assert not isinstance(err.value, OSError)  # netmiko would turn an OSError into "TCP connection failed"
    assert str(blocker / "known_hosts") in str(err.value) and "cannot be written" in str(err.value)


def test_a_known_hosts_path_that_is_a_folder_cannot_be_read(tmp_path):
    (tmp_path / "known_hosts").mkdir()
    with pytest.raises(KnownHostsFileError, match="cannot be read"):
        KnownHosts(tmp_path / "known_hosts").lookup("x", 22)


def test_tofu_on_an_unwritable_store_fails_the_connection_with_that_reason(tmp_path):
    blocker = tmp_path / "state"
    blocker.write_text("")
    with pytest.raises(KnownHostsFileError, match="cannot be written"):
        handshake(ed25519_key(), KnownHosts(blocker / "known_hosts"), "tofu")
