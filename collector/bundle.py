"""Bundle writer: a folder of evidence that is either complete or clearly not.

Files are written into a hidden `.NAME.*.partial` folder beside the final one, each
redacted and 0600, its sha256 taken from the bytes as they are written; `finish()` adds
`manifest.json`, makes the whole folder durable in one flush (`syncfs` on Linux, else one
fsync per file) and only then renames it into place, so a reader never sees a half-written
or torn bundle under its final name. A `.tar.gz` of the finished folder is written the
same way (one fsync, then the rename).

A writer holds an exclusive `flock` on its `.partial` folder until it is sealed, so the
next start can tell a bundle abandoned by a killed or failed run (no lock) from one being
written by another process (locked): `recover_partial_bundles()` seals the abandoned ones
as incomplete bundles (the evidence already written is kept, marked `complete: false`)
and removes half-written tarballs. Before arming, `check_bundle_room()` says whether the
bundle folder can take a capture at all (writable, enough free bytes and inodes).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import tarfile
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from collector import __version__
from collector.redact import RedactionMemo, redact, redact_pieces, redact_values, redacted_view, text_pieces

log = logging.getLogger(__name__)

_SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")


def slug(text: str, limit: int = 80) -> str:
    """A file-name-safe form of a command line or a name."""
    cleaned = re.sub(r"[^A-Za-z0-9.]+", "_", text.strip()).strip("_.").lower()
    return (cleaned or "output")[:limit]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_private(path: Path, data: bytes) -> None:
    """One small file made durable on its own (fsync): for writes outside a bundle folder's
    single flush (recovery's manifest)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


_CHUNK = 1 << 16
STREAM_CHARS = 1 << 20  # a text longer than this is redacted and written piece by piece


def _write_hashed(path: str | Path, chunks: Iterable[str]) -> tuple[int, str]:
    """Write text chunks as UTF-8 to a new 0600 file, hashing as it goes; no fsync (the
    folder is flushed once when sealed). Returns (bytes, sha256)."""
    digest, size, pending, held = hashlib.sha256(), 0, [], 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in chunks:
            pending.append(chunk)
            held += len(chunk)
            if held >= _CHUNK:
                size += _flush(fd, digest, pending)
                pending, held = [], 0
        size += _flush(fd, digest, pending)
    finally:
        os.close(fd)
    return size, digest.hexdigest()


def _flush(fd: int, digest, pending: list[str]) -> int:
    data = "".join(pending).encode("utf-8", errors="replace")
    digest.update(data)
    _write_all(fd, data)
    return len(data)


def _durable_folder(folder: Path) -> None:
    """Every file and folder under `folder` on disk. Linux: one syncfs(2) on the folder's
    file system (a single flush instead of one fsync per file); elsewhere fsync each."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        if _syncfs is not None and _syncfs(fd) == 0:
            return
    finally:
        os.close(fd)
    for path in [*folder.rglob("*"), folder]:
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        elif path.is_dir():
            _fsync_dir(path)


def _load_syncfs():
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None


_syncfs = _load_syncfs()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class BundleWriter:
    """Write one bundle. Every text goes through redaction before it touches the disk:
    IOS secret forms by pattern, and the exact credential values of the inventory."""

    def __init__(self, root: Path, name: str, *, secrets: Iterable[str] = ()):
        if not _SAFE_PART.match(name):
            raise ValueError(f"unsafe bundle name {name!r}")
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.name = name
        self._secrets = tuple(s for s in secrets if s)
        self.work = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=root))  # 0700
        self._lock_fd: int | None = _lock_folder(self.work)
        self.files: list[str] = []
        self._written: dict[str, tuple[int, str]] = {}  # relpath -> (bytes, sha256)
        self._work = str(self.work)
        self._folders: set[str] = {self._work}  # made already: one mkdir per folder, not per file
        self._lock = threading.Lock()  # files may be written from several threads (collect's workers)
        # text -> its redacted form, for every text this bundle redacted: shared by all its files
        # and lent to whoever prints the same results (collect --json), so each is redacted once
        self.redaction_memo = RedactionMemo()

    def _target(self, relpath: str) -> str:
        parts = relpath.split("/")
        if not all(_SAFE_PART.match(p) for p in parts):
            raise ValueError(f"unsafe file name in bundle: {relpath!r}")
        # plain strings: a Path per file cost more than writing it (1,200 files a collect)
        folder = os.path.join(self._work, *parts[:-1])
        if folder not in self._folders:
            os.makedirs(folder, mode=0o700, exist_ok=True)
            self._folders.add(folder)
        return os.path.join(folder, parts[-1])

    def scrub(self, text: str) -> str:
        memo = getattr(self, "redaction_memo", None)
        if memo is None:  # a writer made without __init__ (tests of the redaction alone)
            return redact_values(redact(text), self._secrets)
        cleaned = memo.get(text)
        if cleaned is None:
            cleaned = memo[text] = redact_values(redact(text), self._secrets)
        return cleaned

    def write_text(self, relpath: str, text: str) -> None:
        # Redacted with the config block each line sits in, written and hashed in chunks. A
        # big text (a 10 MB `show logging`) is redacted a piece at a time and not memoised:
        # neither a redacted copy of it nor the memo keeps it alive.
        if len(text) > STREAM_CHARS:
            self._write(relpath, redact_pieces(text_pieces(text), self._secrets))
        else:
            self._write(relpath, (self.scrub(text),))

    def write_pieces(self, relpath: str, pieces: Iterable[str], *, optional: bool = False) -> Path | None:
        """A text made piece by piece (a report rendered as it is written), redacted as
        `write_text` does. `optional`: when making the pieces raises, the file is left out
        (logged) and None returned; a failure to write still raises."""
        failed: list[BaseException] = []

        def guarded() -> Iterator[str]:
            iterator = iter(pieces)
            while True:
                try:
                    piece = next(iterator)
                except StopIteration:
                    return
                except Exception as exc:  # noqa: BLE001 - the caller chose to do without this file
                    if not optional:
                        raise
                    failed.append(exc)
                    return
                yield piece

        target = self._write(relpath, redact_pieces(guarded(), self._secrets))
        if failed:
            log.warning("%s: left out of bundle %s: %s", relpath, self.name, failed[0])
            Path(target).unlink(missing_ok=True)
            with self._lock:
                self.files.remove(relpath)
                del self._written[relpath]
            return None
        return Path(target)

    # JSON escapes newlines, which hides config lines from the line-anchored patterns:
    # redact the values themselves before dumping.
    def write_json(self, relpath: str, obj: object) -> None:
        self._write(relpath, (_json_text(redacted_view(obj, self._secrets, memo=self.redaction_memo)),))

    def write_jsonl(self, relpath: str, rows: Iterable[object]) -> None:
        # Rows (a timeline of a 10 MB log: 69,000 of them) repeat their short values (router,
        # role, source) but hardly ever a line: only the short ones are remembered, in a memo
        # of this file's own (the bundle's would keep every line until the bundle is done).
        memo = _ShortTextMemo()
        self._write(relpath, (_encode(redacted_view(r, self._secrets, memo=memo)) + "\n" for r in rows))

    def _write_raw(self, relpath: str, text: str) -> None:
        self._write(relpath, (text,))

    def _write(self, relpath: str, chunks: Iterable[str]) -> str:
        target = self._target(relpath)
        written = _write_hashed(target, chunks)
        with self._lock:
            if relpath not in self._written:  # (a list look-up per file was quadratic)
                self.files.append(relpath)
            self._written[relpath] = written
        return target

    def finish(self, manifest: dict, *, tarball: bool = True) -> Path:
        """Seal the bundle: manifest with hashes, one flush of the folder, atomic rename,
        optional .tar.gz."""
        entries = [{"path": relpath, "bytes": self._written[relpath][0], "sha256": self._written[relpath][1]}
                   for relpath in self.files]
        body = {"tool": "collector", "tool_version": __version__, **manifest, "files": entries}
        _write_hashed(self.work / "manifest.json",
                      (_manifest_text(redacted_view(body, self._secrets, memo=self.redaction_memo)),))
        _durable_folder(self.work)  # before the rename: a crash cannot show torn files under the final name
        final = _free_name(self.root, self.name)
        os.rename(self.work, final)
        _fsync_dir(self.root)
        self.release()
        if tarball:
            self._tarball(final)
        return final

    def release(self) -> None:
        """Drop the folder lock (done by `finish`; call it when giving a bundle up)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @staticmethod
    def _tarball(folder: Path) -> Path:
        target = folder.with_name(folder.name + ".tar.gz")
        fd, tmp = tempfile.mkstemp(prefix=f".{folder.name}.", suffix=".tar.gz.partial", dir=folder.parent)
        os.close(fd)
        try:
            with tarfile.open(tmp, "w:gz") as archive:
                archive.add(folder, arcname=folder.name)
            os.chmod(tmp, 0o600)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target


class _ShortTexts(set):
    def add(self, text: str) -> None:
        if len(text) <= _SHORT_TEXT:
            super().add(text)


class _ShortTextMemo(RedactionMemo):
    """A redaction memo that keeps only short texts (names, states, mnemonics)."""

    def __init__(self) -> None:
        super().__init__()
        self.clean = _ShortTexts()

    def __setitem__(self, key: str, value: str) -> None:
        if len(key) <= _SHORT_TEXT:
            super().__setitem__(key, value)


_SHORT_TEXT = 64


def _free_name(root: Path, name: str) -> Path:
    final = root / name
    n = 1
    while final.exists():
        n += 1
        final = root / f"{name}_{n}"
    return final


def _lock_folder(folder: Path) -> int:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


# ---------------------------------------------------------------------- room and recovery

CAPTURE_BYTES = 64 * 1024 * 1024  # what one incident's bundle may need: two routers' outputs, a 1 MB
#                                   log buffer each, parsed JSON, report and tarball, with margin
_MIN_INODES = 200


def check_bundle_room(root: str | Path, need_bytes: int = CAPTURE_BYTES) -> str | None:
    """None when `root` can take a bundle of `need_bytes`, else the reason (one line).

    Creates `root` if it is missing and writes (then removes) a small probe file: a folder
    that only looks writable (read-only mount, full quota) is found here, before arming."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not root.is_dir():
            return f"bundle folder {root}: not a folder"
        fd, probe = tempfile.mkstemp(prefix=".room-check.", suffix=".partial", dir=root)
        try:
            _write_all(fd, b"x" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
        info = os.statvfs(root)
    except FileExistsError:
        return f"bundle folder {root}: not a folder"
    except OSError as exc:
        return f"bundle folder {root}: {_why(exc)}"
    free = info.f_bavail * info.f_frsize
    if free < need_bytes:
        return (f"bundle folder {root}: {free / 1e6:.1f} MB free, a capture needs {need_bytes / 1e6:.0f} MB; "
                "free space or give --out another folder")
    if info.f_files and info.f_favail < _MIN_INODES:
        return f"bundle folder {root}: only {info.f_favail} inodes free; free some or give --out another folder"
    return None


def _why(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "the disk is full"
    if exc.errno == errno.EDQUOT:
        return "the disk quota is used up"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"not writable by uid {os.getuid()}"
    if exc.errno == errno.EROFS:
        return "on a read-only file system"
    return exc.strerror or str(exc)


_PARTIAL_FOLDER = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]{8}\.partial$")
_PARTIAL_TARBALL = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]{8}\.tar\.gz\.partial$")
RECOVERED_REASON = ("the agent stopped (killed, crashed or out of disk) while writing this bundle; "
                    "sealed at the next start with the files written until then")


def recover_partial_bundles(root: str | Path) -> list[str]:
    """Seal or remove what failed runs left in `root`; one line per item, for the operator.

    A `.NAME.*.partial` folder nobody holds becomes bundle NAME (or NAME_2...) with a
    manifest saying `complete: false` and why; an empty one is removed. A half-written
    `.tar.gz.partial` is removed and the tarball of its finished folder written again.
    Folders still locked by a live writer are left alone. Never raises for one item: a
    failure (disk still full) is reported and the item left for the next start."""
    root = Path(root)
    if not root.is_dir():
        return []
    said: list[str] = []
    for path in sorted(root.iterdir()):
        folder, tarball = _PARTIAL_FOLDER.match(path.name), _PARTIAL_TARBALL.match(path.name)
        try:
            if tarball and path.is_file():
                said.append(_redo_tarball(root, path, tarball.group("name")))
            elif folder and path.is_dir() and _SAFE_PART.match(folder.group("name")):
                line = _seal_abandoned(root, path, folder.group("name"))
                if line:
                    said.append(line)
        except OSError as exc:
            said.append(f"{path}: could not recover ({_why(exc)}); left for the next start")
    return said


def _redo_tarball(root: Path, path: Path, name: str) -> str:
    path.unlink()
    finished = root / name
    if finished.is_dir() and (finished / "manifest.json").is_file():
        BundleWriter._tarball(finished)
        return f"{path.name}: half-written tarball removed, {finished.name}.tar.gz written again"
    return f"{path.name}: half-written tarball removed"


def _sealed(path: Path) -> bool:
    """The folder holds a manifest whose every file is there with its hash."""
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        return all(sha256_file(path / e["path"]) == e["sha256"] for e in manifest["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _seal_abandoned(root: Path, path: Path, name: str) -> str | None:
    fd: int | None
    try:
        fd = _lock_folder(path)
    except BlockingIOError:
        return None  # a live writer holds it
    try:
        files = sorted(p for p in path.rglob("*") if p.is_file())
        if not files:
            shutil.rmtree(path)
            return f"{path.name}: empty unfinished bundle removed"
        if _sealed(path):  # `finish` wrote the manifest; only the rename was missing
            final = _free_name(root, name)
            os.rename(path, final)
            _fsync_dir(root)
            os.close(fd)
            fd = None
            BundleWriter._tarball(final)
            return f"{path.name}: finished bundle moved into place as {final}"
        entries = [{"path": p.relative_to(path).as_posix(), "bytes": p.stat().st_size, "sha256": sha256_file(p)}
                   for p in files if p.name != "manifest.json"]
        body = {"tool": "collector", "tool_version": __version__, "complete": False,
                "incomplete_reasons": [RECOVERED_REASON], "recovered_from": path.name, "files": entries}
        _write_private(path / "manifest.json", (json.dumps(body, indent=2) + "\n").encode())
        _fsync_dir(path)
        final = _free_name(root, name)
        os.rename(path, final)
        _fsync_dir(root)
    finally:
        if fd is not None:
            os.close(fd)
    BundleWriter._tarball(final)
    return f"{path.name}: unfinished bundle sealed as {final} (complete: false, {len(entries)} files)"


def _json_encoder():
    """`json.dumps(x, default=str)` as one function. json's C encoder made once, without
    the check for circular references (bundle data is records and lists, never cyclic):
    `JSONEncoder.encode` makes a new one per call, 1,200 times a 200-router collect."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # a Python without json's C speed-ups
        return json.JSONEncoder(default=str).encode
    encoder = make(None, str, json.encoder.encode_basestring_ascii, None, ": ", ", ", False, False, True)
    return lambda obj: "".join(encoder(obj, 0))


_encode = _json_encoder()


def _json_text(obj: object) -> str:
    """JSON for a bundle file. A list (parsed records, results) is written one item per
    line: as easy to read and diff as an indented dump, and encoded by json's C encoder
    (an indented dump goes through the pure-Python one, 5-10 times slower)."""
    if isinstance(obj, list) and obj:
        return "[\n" + ",\n".join("  " + _encode(item) for item in obj) + "\n]\n"
    return json.dumps(obj, indent=2, default=str) + "\n"


_ENTRY_KEYS = ["path", "bytes", "sha256"]


def _manifest_text(body: dict) -> str:
    """`json.dumps(body, indent=2)` and a newline, byte for byte, with its last item, the
    "files" list (1,202 entries in a 200-router collect), formatted here: an indented dump
    runs json's pure-Python encoder, the slowest step of sealing (after the last router)."""
    files = body.get("files")
    if not files or len(body) < 2 or list(body)[-1] != "files" or any(
            list(e) != _ENTRY_KEYS or type(e["bytes"]) is not int or type(e["path"]) is not str
            or type(e["sha256"]) is not str for e in files):
        return json.dumps(body, indent=2, default=str) + "\n"
    head = json.dumps({k: v for k, v in body.items() if k != "files"}, indent=2, default=str)
    quote = json.encoder.encode_basestring_ascii  # what json.dumps writes for a str
    rows = ",\n".join(f'    {{\n      "path": {quote(e["path"])},\n      "bytes": {e["bytes"]},\n'
                      f'      "sha256": {quote(e["sha256"])}\n    }}' for e in files)
    return f'{head[:-2]},\n  "files": [\n{rows}\n  ]\n}}\n'


def discard_abandoned_partial(root: str | Path, name: str) -> list[Path]:
    """Remove the unfinished folders of bundle `name` that no live writer holds (a stopped
    run's; its incident is being sealed again in full). Returns what was removed."""
    root = Path(root)
    if not root.is_dir():
        return []
    removed = []
    for path in sorted(root.glob(f".{name}.*.partial")):
        match = _PARTIAL_FOLDER.match(path.name)
        if not match or match.group("name") != name or not path.is_dir():
            continue
        try:
            fd = _lock_folder(path)
        except (BlockingIOError, OSError):
            continue  # a live writer holds it, or it went away
        try:
            shutil.rmtree(path)
            removed.append(path)
        except OSError as exc:
            log.warning("%s: could not remove an unfinished bundle: %s", path, _why(exc))
        finally:
            os.close(fd)
    return removed
