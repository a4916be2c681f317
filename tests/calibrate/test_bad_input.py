"""Bad input to ``calibrate``: an empty file, an alias bomb, and the platform's own sample L1.

Before: ``calibrate`` on an empty file said "TypeError: Open requires a filepath", an alias bomb
hung it at 100 % CPU, and the sample survey's L1 ramps (``size``² frames) did not match the
platform's reference set of the same ``size`` (frames with the 4-pixel reference border).
"""

from __future__ import annotations

import pytest


def test_empty_file_is_one_clear_line(tmp_path, capsys, refset_dir):
    from platform_lib.cli import main

    empty = tmp_path / "empty_uncal.asdf"
    empty.write_bytes(b"")
    code = main(
        ["calibrate", "l2", str(empty), "--out", str(tmp_path / "out"), "--refs", str(refset_dir)]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and "empty file" in err[0] and "TypeError" not in err[0], err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_alias_bomb_is_refused(tmp_path):
    from platform_lib.calibrate import InputError
    from platform_lib.calibrate.exposure import check_l1

    bomb = tmp_path / "bomb_uncal.asdf"
    levels = "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9))
    bomb.write_text(
        "#ASDF 1.0.0\n%YAML 1.1\n---\na0: &a0 [x, x, x, x, x, x, x, x, x]\n"
        f"{levels}roman: *a8\n...\n"
    )
    with pytest.raises(InputError, match="bomb_uncal.asdf: .*alias"):
        check_l1(bomb, None)


def test_sample_l1_matches_the_platform_reference_set(tmp_path):
    from astropy.time import Time

    from platform_lib.calibrate.exposure import check_l1
    from platform_lib.calibrate.reference_files import make_reference_set, open_reference_set
    from platform_lib.sample import make_exposure

    size = 32
    raw, l2 = make_exposure("WFI01", "F158", 270.0, 66.0, Time("2027-03-01T00:00:00"), size=size)
    raw.save(tmp_path / "s_uncal.asdf")
    make_reference_set(tmp_path / "refs", size=size, optical_elements=("F158",))
    refs = open_reference_set(tmp_path / "refs")
    info = check_l1(tmp_path / "s_uncal.asdf", refs)  # refused before: 32² against 40²
    assert info["shape"][1:] == tuple(refs.shape) == (size + 8, size + 8)
    assert l2.data.shape == (size, size)
