"""Templates and playbooks must ship inside the wheel, not only live in the checkout."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_carries_templates_and_playbooks(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    wheel = next(tmp_path.glob("collector-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    # the package and its metadata only: a top-level `tests` in a wheel shadows the user's
    # own (textfsm 2.1.1's wheel carries one)
    tops = {name.split("/")[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"collector"}
    for template in (ROOT / "templates").iterdir():
        assert f"collector/_data/templates/{template.name}" in names
    for playbook in (ROOT / "playbooks").glob("*.yaml"):
        assert f"collector/_data/playbooks/{playbook.name}" in names

    # Installed (not a checkout): the package finds its own copies.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = subprocess.run(
        [sys.executable, "-c", "from collector.resources import templates_dir, playbooks_dir;"
                               "print(templates_dir()); print(playbooks_dir())"],
        capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
    )
    assert probe.returncode == 0, probe.stderr
    found = probe.stdout.split()
    assert found == [str(site / "collector/_data/templates"), str(site / "collector/_data/playbooks")]
    assert (Path(found[0]) / "index").is_file() and (Path(found[1]) / "invalid-spi.yaml").is_file()
