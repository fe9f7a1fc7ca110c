"""The bundle write path: hashes taken while writing, one flush of the folder at sealing."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector import bundle
from collector.bundle import BundleWriter, sha256_file


def _sealed(tmp_path, monkeypatch, syncfs):
    monkeypatch.setattr(bundle, "_syncfs", syncfs)
    fsynced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(bundle.os, "fsync", lambda fd: (fsynced.append(fd), real(fd))[1])
    writer = BundleWriter(tmp_path, "b", secrets=["hunter2secret"])
    big = "".join(f"line {i} password hunter2secret\n" for i in range(20000))  # > one write chunk
    writer.write_text("r1/01_show_run.txt", big)
    writer.write_json("r1/01_show_run.json", [{"k": "hunter2secret", "n": i} for i in range(3)])
    writer.write_jsonl("timeline.jsonl", ({"i": i} for i in range(5)))
    writer.write_text("r1/01_show_run.txt", big[:100])  # written again: one entry, the last text
    final = writer.finish({"complete": True}, tarball=False)
    return final, fsynced


def test_manifest_hashes_and_sizes_are_those_of_the_files_on_disk(tmp_path, monkeypatch):
    final, _ = _sealed(tmp_path, monkeypatch, None)
    manifest = json.loads((final / "manifest.json").read_text())
    paths = [e["path"] for e in manifest["files"]]
    assert paths == ["r1/01_show_run.txt", "r1/01_show_run.json", "timeline.jsonl"]
    for entry in manifest["files"]:
        assert entry["sha256"] == sha256_file(final / entry["path"])
        assert entry["bytes"] == (final / entry["path"]).stat().st_size
    assert "hunter2secret" not in "".join(p.read_text() for p in final.rglob("*") if p.is_file())
    parsed = (final / "r1/01_show_run.json").read_text()
    assert json.loads(parsed) == [{"k": "<removed>", "n": i} for i in range(3)]
    assert parsed.splitlines()[1] == '  {"k": "<removed>", "n": 0},'  # one record per line
    assert (final / "timeline.jsonl").read_text() == "".join(json.dumps({"i": i}) + "\n" for i in range(5))
    assert oct((final / "timeline.jsonl").stat().st_mode & 0o777) == "0o600"


def test_sealing_flushes_the_folder_once_then_the_rename(tmp_path, monkeypatch):
    calls: list[int] = []
    _final, fsynced = _sealed(tmp_path, monkeypatch, lambda fd: calls.append(fd) or 0)
    assert len(calls) == 1  # one syncfs for the whole folder, before the rename
    assert len(fsynced) == 1  # and the bundle root's directory entry after it


def test_without_syncfs_every_file_and_folder_is_fsynced_before_the_rename(tmp_path, monkeypatch):
    _final, fsynced = _sealed(tmp_path, monkeypatch, None)
    # 4 files (3 + manifest) and 2 folders (the bundle, r1), then the root after the rename
    assert len(fsynced) == 4 + 2 + 1


def test_a_failed_syncfs_falls_back_to_fsync_each(tmp_path, monkeypatch):
    _final, fsynced = _sealed(tmp_path, monkeypatch, lambda fd: -1)
    assert len(fsynced) == 4 + 2 + 1


def test_a_big_text_is_written_as_the_redaction_of_the_whole(tmp_path):
    """Over bundle.STREAM_CHARS a text is redacted and written a piece at a time: the file
    is what redacting it whole gives (a secret in a config block across pieces included)."""
    from collector.redact import redact, redact_values

    block = "tacacs server T1\n address ipv4 192.0.2.9\n key 7 0822455D0A16\n"
    text = "".join(f"*Dec  6 10:00:{i % 60:02d}: line {i} hunter2secret\n{block if i % 997 == 0 else ''}"
                   for i in range(60000))
    assert len(text) > bundle.STREAM_CHARS
    writer = BundleWriter(tmp_path, "b", secrets=["hunter2secret"])
    writer.write_text("r1/02_show_logging.txt", text)
    final = writer.finish({"complete": True}, tarball=False)
    written = (final / "r1" / "02_show_logging.txt").read_text()
    assert written == redact_values(redact(text), ["hunter2secret"])
    assert "hunter2secret" not in written and "0822455D0A16" not in written


def test_pieces_that_break_while_made_leave_their_file_out(tmp_path):
    """report.html is rendered as it is written: when rendering breaks half-way the page is
    left out (as when it could not be rendered at all), the rest of the bundle is sealed;
    a file that is not optional still fails."""
    def broken():
        yield "<html>\n"
        raise ValueError("no page today")

    writer = BundleWriter(tmp_path, "b")
    writer.write_text("report.md", "# report\n")
    assert writer.write_pieces("report.html", broken(), optional=True) is None
    final = writer.finish({"complete": True}, tarball=False)
    assert not (final / "report.html").exists()
    assert [e["path"] for e in json.loads((final / "manifest.json").read_text())["files"]] == ["report.md"]
    with pytest.raises(ValueError):
        BundleWriter(tmp_path, "c").write_pieces("report.html", broken())


def test_the_manifest_is_the_indented_json_dump_byte_for_byte():
    files = [{"path": f"rtr-{i}/01_show_version.txt", "bytes": 100 + i, "sha256": f"{i:064x}"} for i in range(3)]
    body = {"tool": "collector", "complete": False, "incomplete_reasons": ['r1: "x"\n\u00e9'], "nested": {"a": [1, {}]},
            "files": files}
    assert bundle._manifest_text(body) == json.dumps(body, indent=2) + "\n"
    for odd in ({**body, "files": []}, {"files": files}, {**body, "files": [{**files[0], "extra": 1}]},
                {**body, "files": [{**files[0], "bytes": True}]}, {"files": files, "tool": "collector"}):
        assert bundle._manifest_text(odd) == json.dumps(odd, indent=2) + "\n"


_scalar = st.one_of(st.text(max_size=8), st.integers(), st.floats(), st.booleans(), st.none(),
                    st.dates(), st.binary(max_size=4))
_json_like = st.recursive(_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.tuples(inner, inner),
    st.dictionaries(st.one_of(st.text(max_size=6), st.integers(), st.booleans(), st.none()), inner, max_size=4)),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(_json_like)
def test_the_encoder_made_once_writes_what_json_dumps_writes(data):
    # json's C encoder, made once for every file (dates and bytes through str, as default=str)
    assert bundle._encode(data) == json.dumps(data, default=str)
