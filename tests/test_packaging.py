"""The package builds without a warning of ours and says its licence the way installers read it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_wheel_builds_without_warnings_and_carries_its_spdx_licence(tmp_path: Path) -> None:
    # Issue 30: `license = { text = ... }` made setuptools warn on every build (a deprecation
    # with builds unsupported from 2027-02-18). The installed setuptools builds it, offline.
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )  # fmt: skip
    said = built.stdout + built.stderr
    assert "BuildBackendWarning" not in said and "DeprecationWarning" not in said, said[-2000:]
    (wheel,) = tmp_path.glob("wyoming_orpheus-*.whl")
    with zipfile.ZipFile(wheel) as packed:
        meta = next(n for n in packed.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = packed.read(meta).decode()
        licences = [n for n in packed.namelist() if "/licenses/" in n]
    assert "License-Expression: Apache-2.0" in metadata.splitlines()
    assert [Path(n).name for n in licences] == ["LICENSE"]
    assert "Apache License" in (REPO / "LICENSE").read_text(encoding="utf-8")
