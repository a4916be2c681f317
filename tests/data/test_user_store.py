"""Issue 16 item 12: the writing commands write into the user's own store, never the survey.

Folder stores in tmp_path stand for the survey (``ROMAN_DATA_URL``) and the user's prefix
(``ROMAN_USER_STORE_URL``); the read-only case runs against the real S3 server (SeaweedFS) with
an identity that may only read, as the survey bucket is for users on the platform.
"""

from __future__ import annotations

import subprocess
import uuid

import pytest

from platform_lib.cli import main
from platform_lib.data.store import get_store


@pytest.fixture
def stores(tmp_path, monkeypatch, product_files):
    """(survey, mine): a survey folder with one indexed L2 product; the user's own folder with
    another product, not indexed yet."""
    from platform_lib.data.index import build_index

    l2 = sorted(k for k in product_files if "/L2/" in k)
    survey = get_store(tmp_path / "survey")
    survey.put_file(product_files[l2[0]], "L2/" + l2[0].rsplit("/", 1)[1])
    build_index(survey, progress=False)
    mine = get_store(tmp_path / "users" / "alice")
    mine.put_file(product_files[l2[1]], "sims/" + l2[1].rsplit("/", 1)[1])
    monkeypatch.setenv("ROMAN_DATA_URL", survey.root)
    monkeypatch.setenv("ROMAN_USER_STORE_URL", mine.root + "/")
    monkeypatch.delenv("DASK_GATEWAY__ADDRESS", raising=False)
    return survey, mine


def test_data_index_of_the_survey_indexes_my_space_and_search_finds_both(stores, capsys):
    from platform_lib import data
    from platform_lib.data.index import INDEX_PATH, load_index

    survey, mine = stores
    shared_before = survey.read_bytes(INDEX_PATH)
    # A user running "data index" on the survey store does not rewrite the shared index.
    assert main(["data", "index", survey.root]) == 0
    assert "indexing your own store" in capsys.readouterr().err
    assert survey.read_bytes(INDEX_PATH) == shared_before
    assert [p.split("/")[0] for p in load_index(mine).column("path").to_pylist()] == ["sims"]
    # The default search: the survey's products and the user's own, each openable from its row.
    rows = data.search(level="L2")
    assert sorted(rows["source"]) == ["store", "user"]
    own = rows[rows["source"] == "user"][0]
    assert own["store"] == mine.root_url and own["path"].startswith("sims/")
    with data.open(own) as model:
        assert model.data.shape[0] > 0
    # An explicit store is searched alone (no user rows mixed in).
    assert list(data.search(level="L2", store=survey.root)["source"]) == ["store"]


def test_operators_can_still_index_the_shared_store(stores):
    from platform_lib.data.index import load_index

    survey, mine = stores
    survey.put_file(mine.path(next(iter(mine.walk_files("sims")))), "L2/extra_cal.asdf")
    assert main(["data", "index", survey.root, "--shared"]) == 0
    assert "L2/extra_cal.asdf" in load_index(survey).column("path").to_pylist()


def test_outputs_resolve_to_my_store_unless_chosen(stores, tmp_path):
    from platform_lib.data.user_store import output_location, resolve_output

    survey, mine = stores
    store, rel = output_location("L4")
    assert (store.root_url, rel) == (mine.root_url, "L4")
    store, rel = output_location("L4", store=survey.root)  # --store: explicitly that store
    assert store.root_url == survey.root_url
    store, rel = output_location(str(tmp_path / "elsewhere"))  # a full location: as given
    assert (store.root_url, rel) == (str(tmp_path / "elsewhere"), "")
    assert resolve_output("sims/run1") == mine.root + "/sims/run1"
    assert resolve_output("./local") == "./local"


def test_simulate_scene_with_a_relative_out_lands_in_my_store(stores):
    survey, mine = stores
    code = main(
        ["simulate", "scene", "--center", "270", "66", "--stars", "5", "--out", "scenes/s.ecsv"]
    )
    assert code == 0
    assert mine.exists("scenes/s.ecsv") and not survey.exists("scenes/s.ecsv")


def test_calibrate_outputs_are_indexed_into_my_index(stores, monkeypatch):
    """calibrate_many adds its outputs to the index of the store they are in: the user's."""
    from platform_lib.calibrate.scale import _index_outputs
    from platform_lib.data.index import INDEX_PATH, load_index

    survey, mine = stores
    shared_before = survey.read_bytes(INDEX_PATH)
    assert _index_outputs(mine.root + "/sims", client=None) == 1
    assert load_index(mine).num_rows == 1 and survey.read_bytes(INDEX_PATH) == shared_before


# ------------------------------------------------------------------ a store that refuses writes
@pytest.fixture(scope="module")
def read_only_env(s3_store):
    """The environment of a user whose S3 identity may read the survey bucket, not write it."""
    key, secret = "RO" + uuid.uuid4().hex[:16].upper(), uuid.uuid4().hex
    script = (
        f"s3.configure -user ro-{key.lower()} -access_key {key} -secret_key {secret} "
        "-actions Read:roman,List:roman -apply\n"
    )
    r = subprocess.run(
        [s3_store.weed, "shell", f"-master={s3_store.master_address}"],
        input=script,
        text=True,
        capture_output=True,
        timeout=60,
        cwd=s3_store.folder,
    )
    assert r.returncode == 0 and "error" not in (r.stdout + r.stderr).lower(), r.stdout + r.stderr
    env = s3_store.client_env(prefix="ro-survey")
    env.update(
        AWS_ACCESS_KEY_ID=key,
        AWS_SECRET_ACCESS_KEY=secret,
        ROMAN_USER_STORE_URL="s3://roman/users/ro/",
    )
    return env


@pytest.mark.parametrize(
    "argv",
    [
        [
            "catalog",
            "static",
            "--store",
            "s3://roman/ro-survey",
            "--name",
            "x",
            "--out",
            "L4",
            "L2/a_cal.asdf",
        ],
        [
            "simulate",
            "scene",
            "--center",
            "270",
            "66",
            "--stars",
            "3",
            "--out",
            "s3://roman/ro-survey/s.ecsv",
        ],
        ["data", "index", "s3://roman/ro-survey", "--shared"],
    ],
)
def test_writing_into_a_read_only_store_is_one_clear_line(read_only_env, monkeypatch, capsys, argv):
    for k, v in read_only_env.items():
        monkeypatch.setenv(k, v)
    get_store.__globals__["_KNOWN"].clear()  # no store reached earlier with the admin keys
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "refuses writes" in err and "ROMAN_USER_STORE_URL=s3://roman/users/ro/" in err, err
