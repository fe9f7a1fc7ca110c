"""Bundle writer: a folder of evidence that is either complete or clearly not.

Files are written into a hidden `.NAME.*.partial` folder beside the final one, each
redacted, 0600 and fsynced; `finish()` adds `manifest.json` (sha256 of every file) and
renames the folder into place in one step, so a reader never sees a half-written bundle
under its final name. A `.tar.gz` of the finished folder is written the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path

from collector import __version__
from collector.redact import redact, redact_data, redact_values

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
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


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
        self.files: list[str] = []

    def _target(self, relpath: str) -> Path:
        parts = relpath.split("/")
        if not all(_SAFE_PART.match(p) for p in parts):
            raise ValueError(f"unsafe file name in bundle: {relpath!r}")
        target = self.work.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return target

    def scrub(self, text: str) -> str:
        return redact_values(redact(text), self._secrets)

    def write_text(self, relpath: str, text: str) -> Path:
        target = self._target(relpath)
        _write_private(target, self.scrub(text).encode("utf-8", errors="replace"))
        self.files.append(relpath)
        return target

    # JSON escapes newlines, which hides config lines from the line-anchored patterns:
    # redact the values themselves before dumping.
    def write_json(self, relpath: str, obj: object) -> Path:
        return self._write_raw(relpath, json.dumps(redact_data(obj, self._secrets), indent=2, default=str) + "\n")

    def write_jsonl(self, relpath: str, rows: Iterable[object]) -> Path:
        return self._write_raw(relpath, "".join(json.dumps(redact_data(r, self._secrets), default=str) + "\n" for r in rows))

    def _write_raw(self, relpath: str, text: str) -> Path:
        target = self._target(relpath)
        _write_private(target, text.encode("utf-8", errors="replace"))
        self.files.append(relpath)
        return target

    def finish(self, manifest: dict, *, tarball: bool = True) -> Path:
        """Seal the bundle: manifest with hashes, atomic rename, optional .tar.gz."""
        entries = []
        for relpath in self.files:
            path = self.work / relpath
            entries.append({"path": relpath, "bytes": path.stat().st_size, "sha256": sha256_file(path)})
        body = {"tool": "collector", "tool_version": __version__, **manifest, "files": entries}
        _write_private(self.work / "manifest.json",
                       (json.dumps(redact_data(body, self._secrets), indent=2, default=str) + "\n").encode())
        for folder in {self.work, *(p.parent for p in self.work.rglob("*") if p.is_file())}:
            _fsync_dir(folder)
        final = self._free_name()
        os.rename(self.work, final)
        _fsync_dir(self.root)
        if tarball:
            self._tarball(final)
        return final

    def _free_name(self) -> Path:
        final = self.root / self.name
        n = 1
        while final.exists():
            n += 1
            final = self.root / f"{self.name}_{n}"
        return final

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
