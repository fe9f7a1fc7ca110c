"""A bundle folder that cannot take a capture is said before arming; what a failed run
left half-written is sealed as incomplete (or finished) by the next start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from collector.bundle import RECOVERED_REASON, BundleWriter, check_bundle_room, recover_partial_bundles

REPO = Path(__file__).resolve().parents[2]


def test_room_is_fine_in_a_writable_folder_and_it_leaves_nothing(tmp_path):
    root = tmp_path / "bundles"
    assert check_bundle_room(root, 1024) is None
    assert list(root.iterdir()) == []


def test_room_refused_when_the_capture_would_not_fit(tmp_path):
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    reason = check_bundle_room(tmp_path, free * 10 + 1)
    assert reason.startswith(f"bundle folder {tmp_path}: ") and "MB free, a capture needs" in reason


def test_room_refused_for_a_file_and_for_an_unwritable_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    assert check_bundle_room(tmp_path / "file", 1) == f"bundle folder {tmp_path / 'file'}: not a folder"
    code = "from collector.bundle import check_bundle_room; print(check_bundle_room('/proc/collector-bundles', 1))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.stdout.startswith("bundle folder /proc/collector-bundles: "), done.stdout + done.stderr


def _abandoned(root: Path, name: str = "20261206T010203Z_invalid-spi_hub1_0x1a2b3c4d", files: int = 2) -> Path:
    writer = BundleWriter(root, name)
    for i in range(files):
        writer.write_text(f"hub1/{i:02d}_show_logging.txt", f"output {i}\n")
    writer.release()  # the process died: its lock is gone
    return writer.work


def test_an_abandoned_bundle_is_sealed_as_incomplete(tmp_path):
    work = _abandoned(tmp_path)
    said = recover_partial_bundles(tmp_path)
    final = tmp_path / "20261206T010203Z_invalid-spi_hub1_0x1a2b3c4d"
    assert said == [f"{work.name}: unfinished bundle sealed as {final} (complete: false, 2 files)"]
    manifest = json.loads((final / "manifest.json").read_text())
    assert manifest["complete"] is False and manifest["incomplete_reasons"] == [RECOVERED_REASON]
    assert [f["path"] for f in manifest["files"]] == ["hub1/00_show_logging.txt", "hub1/01_show_logging.txt"]
    assert (tmp_path / f"{final.name}.tar.gz").is_file()
    assert not work.exists() and recover_partial_bundles(tmp_path) == []


def test_a_bundle_being_written_by_a_live_process_is_left_alone(tmp_path):
    writer = BundleWriter(tmp_path, "live")
    writer.write_text("a.txt", "x")
    assert recover_partial_bundles(tmp_path) == []
    assert writer.work.exists()
    assert writer.finish({"complete": True}, tarball=False) == tmp_path / "live"


def test_a_bundle_killed_after_its_manifest_is_moved_into_place_as_it_was(tmp_path):
    writer = BundleWriter(tmp_path, "killed-at-rename")
    writer.write_text("a.txt", "x")
    from collector import bundle

    def die(*_args):
        raise KeyboardInterrupt

    original = bundle.os.rename
    bundle.os.rename = die
    try:
        try:
            writer.finish({"complete": True, "kind": "collect"})
        except KeyboardInterrupt:
            pass
    finally:
        bundle.os.rename = original
    writer.release()
    said = recover_partial_bundles(tmp_path)
    assert said == [f"{writer.work.name}: finished bundle moved into place as {tmp_path / 'killed-at-rename'}"]
    assert json.loads((tmp_path / "killed-at-rename" / "manifest.json").read_text())["complete"] is True


def test_empty_and_tarball_leftovers_are_removed(tmp_path):
    empty = BundleWriter(tmp_path, "empty")
    empty.release()
    done = BundleWriter(tmp_path, "done")
    done.write_text("a.txt", "x")
    final = done.finish({"complete": True}, tarball=False)
    half = tmp_path / ".done.abcd1234.tar.gz.partial"
    half.write_bytes(b"\x1f\x8b half")
    said = recover_partial_bundles(tmp_path)
    assert f"{empty.work.name}: empty unfinished bundle removed" in said
    assert f"{half.name}: half-written tarball removed, done.tar.gz written again" in said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done", "done.tar.gz"]
    assert final.is_dir()


KILLED_WRITER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from collector.bundle import BundleWriter
    w = BundleWriter(Path(sys.argv[1]), "killed")
    w.write_text("hub1/01_show_clock.txt", "*10:00:00.000 UTC Sun Dec 6 2026\\n")
    os.kill(os.getpid(), 9)
    """
)


def test_a_writer_killed_by_sigkill_leaves_a_bundle_the_next_start_seals(tmp_path):
    subprocess.run([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], env=dict(os.environ, PYTHONPATH=str(REPO)))
    said = recover_partial_bundles(tmp_path)
    assert len(said) == 1 and "sealed as" in said[0]
    assert (tmp_path / "killed" / "hub1" / "01_show_clock.txt").read_text().startswith("*10:00")
