"""Where a report is written and how: beside the sealed bundle, never inside it, atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_file(path: Path, text: str) -> None:
    """Write atomically (a reader never sees half a report); parent folders are created.

    Raises:
        OSError: the folder or the file cannot be written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def default_report_paths(bundle: Path) -> tuple[Path, Path]:
    """`<parent>/<bundle name>.report.md` and `.report.json`: beside the sealed folder."""
    folder = bundle.resolve()
    return folder.parent / f"{folder.name}.report.md", folder.parent / f"{folder.name}.report.json"


def json_beside(markdown: Path) -> Path:
    """The JSON twin of a markdown report path: FILE.md -> FILE.json, FILE -> FILE.json."""
    return markdown.with_suffix(".json") if markdown.suffix.lower() == ".md" else markdown.with_name(markdown.name + ".json")


def report_paths(bundle: Path, out: Path | None) -> tuple[Path, Path]:
    """The markdown and JSON paths of a report on `bundle`: `out` and its twin, else beside
    the bundle.

    Raises:
        ValueError: `out` (or its JSON twin) lies inside the bundle, which is never modified.
    """
    if out is None:
        return default_report_paths(bundle)
    md_path, json_path = out, json_beside(out)
    inside = bundle.resolve()
    for target in (md_path, json_path):
        if target.resolve().is_relative_to(inside):
            raise ValueError(f"--out {out}: inside the bundle; the sealed bundle is never modified")
    return md_path, json_path
