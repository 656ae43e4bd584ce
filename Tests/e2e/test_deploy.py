"""Deployment artefacts: the systemd unit and the operator documentation.

The unit is checked by systemd's own analyzer (a third party to our code): it
must parse, name executables that exist, and keep its hardening. The docs must
name every subcommand the binary offers.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "etc" / "gatewayd.service"


@pytest.fixture
def gatewayd(gatewayd_bin: str) -> str:
    return gatewayd_bin


def unit_with_binary(tmp_path: Path, binary: str) -> Path:
    """The shipped unit with /usr/local/bin/gatewayd pointing at the binary under test."""
    text = UNIT.read_text().replace("/usr/local/bin/gatewayd", binary)
    path = tmp_path / "gatewayd.service"
    path.write_text(text)
    return path


def analyzer() -> str:
    path = shutil.which("systemd-analyze")
    assert path, "systemd-analyze is missing (scripts/test installs the systemd package)"
    return path


def test_unit_passes_systemd_analyze_verify(tmp_path: Path, gatewayd: str) -> None:
    unit = unit_with_binary(tmp_path, gatewayd)
    out = subprocess.run([analyzer(), "verify", str(unit)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in (out.stdout + out.stderr).splitlines() if "gatewayd.service" in line]
    assert out.returncode == 0 and not complaints, out.stdout + out.stderr


def test_unit_hardening_exposure_stays_low(tmp_path: Path, gatewayd: str) -> None:
    unit = unit_with_binary(tmp_path, gatewayd)
    out = subprocess.run(
        [analyzer(), "security", "--offline=yes", str(unit)], capture_output=True, text=True, timeout=60
    )
    match = re.search(r"Overall exposure level for gatewayd\.service: ([0-9.]+)", out.stdout + out.stderr)
    assert match, out.stdout + out.stderr
    assert float(match.group(1)) <= 2.0, out.stdout


def test_unit_commands_are_ones_the_binary_accepts(gatewayd: str) -> None:
    text = UNIT.read_text()
    start_pre = re.search(r"^ExecStartPre=(.+)$", text, re.M).group(1).split()
    start = re.search(r"^ExecStart=(.+)$", text, re.M).group(1).split()
    assert start_pre[1:3] == ["check-config", "--config"] and start[1:3] == ["serve", "--config"]
    assert start_pre[3] == start[3], "check-config must validate the file serve will load"
    assert re.search(r"^ExecReload=/bin/kill -HUP \$MAINPID$", text, re.M)
    # The shipped example config passes the check the unit runs before every start.
    out = subprocess.run(
        [gatewayd, "check-config", "--config", str(ROOT / "etc" / "gatewayd.toml")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    # And serve knows the option the unit passes.
    out = subprocess.run([gatewayd, "serve", "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "--config" in out.stdout


def subcommands(binary: str, *path: str) -> list[str]:
    out = subprocess.run([binary, *path, "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    section = out.stdout.split("SUBCOMMANDS:", 1)
    if len(section) < 2:
        return []
    names = []
    for line in section[1].splitlines():
        m = re.match(r"^  ([a-z][a-z-]*)\b", line)
        if m:
            names.append(m.group(1))
        elif line.strip() and not line.startswith(" "):
            break
    return names


def test_operations_doc_names_every_subcommand(gatewayd: str) -> None:
    doc = (ROOT / "docs" / "OPERATIONS.md").read_text()
    top = subcommands(gatewayd)
    assert {"serve", "check-config", "migrate", "sessions", "connections", "backup"} <= set(top), top
    missing = [name for name in top if name not in ("sandbox", "help") and f"gatewayd {name}" not in doc]
    for group in ("sessions", "connections"):
        missing += [f"{group} {sub}" for sub in subcommands(gatewayd, group) if f"gatewayd {group} {sub}" not in doc]
    assert not missing, f"docs/OPERATIONS.md does not mention: {missing}"
