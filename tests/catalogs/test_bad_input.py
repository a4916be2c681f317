"""``catalog`` on a product that would hang it: one clear line, no Dask traceback dump.

Before, a YAML alias bomb in a product hung ``catalog static`` at 100 % CPU, and catalog errors
arrived after a Dask "Compute Failed" traceback from the worker.
"""

from __future__ import annotations

import subprocess
import sys


def test_alias_bomb_product_is_one_line_without_a_dask_dump(tmp_path):
    levels = "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9))
    (tmp_path / "bomb_cal.asdf").write_text(
        "#ASDF 1.0.0\n%YAML 1.1\n---\na0: &a0 [x, x, x, x, x, x, x, x, x]\n"
        f"{levels}roman: *a8\n...\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "platform_lib.cli",
            "catalog",
            "static",
            "--store",
            str(tmp_path),
            "--name",
            "bomb",
            "--out",
            "L4",
            "bomb_cal.asdf",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "alias" in lines[0] and "bomb_cal.asdf" in lines[0]
    assert "Traceback" not in proc.stderr and "Compute Failed" not in proc.stderr
