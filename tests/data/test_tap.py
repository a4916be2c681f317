"""The TAP/ObsCore service (GAVO DaCHS on PostgreSQL + pgSphere), queried with pyvo and astroquery.

A real DaCHS server on its own PostgreSQL publishes a small store's index (an L2 exposure and the
platform's L4 catalog and segmentation map); alice publishes L5 rows of each visibility. Every
user queries with the credentials the platform holds for them (``TapService.grant``); what they
may see is decided by PostgreSQL's row-level security, so each refusal below is server side.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(600)]

POINTING = (270.0, 66.0)
#: the sky position every product of the fixture covers: the L2 cutout's centre (set at start)
RA = DEC = CONE = None


def _centre(ra, dec):
    global RA, DEC, CONE
    RA, DEC = ra, dec
    CONE = f"1 = INTERSECTS(s_region, CIRCLE('ICRS', {RA}, {DEC}, 0.001))"


def _l5_row(name, visibility, team=None, owner="alice"):
    from platform_lib.data.obscore import obscore_row

    row = {
        "path": f"users/{owner}/l5/{name}_cat.parquet",
        "level": "L5",
        "product_type": "source_catalog",
        "optical_element": "F158",
        "s_region": f"POLYGON ICRS {RA - 0.01} {DEC - 0.01} {RA + 0.01} {DEC - 0.01} "
        f"{RA + 0.01} {DEC + 0.01} {RA - 0.01} {DEC + 0.01}",
        "ra_center": RA,
        "dec_center": DEC,
        "size": 2048,
    }
    return obscore_row(
        row,
        f"s3://roman/{row['path']}",
        visibility=visibility,
        team=team,
        owner_name=owner,
        licence="CC-BY-4.0",
    )


@pytest.fixture(scope="module")
def tap():
    from astropy.time import Time

    from hub_config.tap.catalog import publish_index
    from hub_config.tap.service import TapService, dachs_available
    from platform_lib.data.index import build_index
    from platform_lib.sample import make_exposure, make_l4_products

    missing = dachs_available()
    if missing:
        pytest.fail(f"{missing}: run scripts/system-deps.sh")
    base = Path(tempfile.mkdtemp(prefix="roman-tap-"))
    base.chmod(0o755)  # the PostgreSQL server runs as the postgres user and must reach its folder
    store = base / "store"
    (store / "L2").mkdir(parents=True)
    _, l2 = make_exposure(
        "WFI01",
        "F158",
        *POINTING,
        Time("2027-03-01T00:00:00"),
        program=7,
        visit=1,
        exposure=1,
        size=32,
        seed=1,
    )
    l2.save(store / "L2" / "r0000701001001_wfi01_f158_cal.asdf")
    _centre(*(float(v) for v in l2.meta.wcs(15.5, 15.5)))
    make_l4_products(str(store / "L4"), "field7_f158", RA, DEC)
    build_index(str(store), progress=False)
    service = TapService(base / "tap", default_maxrec=4)  # small: the overflow test hits it
    with service:
        assert publish_index(service, str(store)) == 3
        service.grant("alice", ["lensing"])
        service.grant("bob", ["lensing"])
        service.grant("carol", ["transients"])
        for name, vis, team in (
            ("mine", "private", None),
            ("ours", "team", "lensing"),
            ("everyone", "public", None),
        ):
            service.add_product(_l5_row(name, vis, team))
        yield service, store
    shutil.rmtree(base, ignore_errors=True)


def _tap(service, user=None, password=None):
    import pyvo
    import requests

    session = requests.Session()
    if user:
        session.auth = (user, password or service.password_for(user))
    return pyvo.dal.TAPService(service.url, session=session)


def _l5_names(service, user=None, password=None):
    rows = (
        _tap(service, user, password)
        .search("SELECT product_path FROM roman.products WHERE roman_level = 'L5'")
        .to_table()
    )
    return sorted(p.rsplit("/", 1)[-1].split("_")[0] for p in rows["product_path"])


def test_adql_cone_polygon_and_join_with_pyvo(tap):
    import astropy.units as u

    service, _ = tap
    svc = _tap(service, "carol")
    cone = svc.search(
        f"SELECT obs_publisher_did, calib_level, dataproduct_type, s_region, "
        f"t_min, t_max, em_min, em_max, access_url, roman_level FROM roman.products "
        f"WHERE {CONE} AND roman_level IN ('L2', 'L4')"
    ).to_table()
    assert sorted(cone["roman_level"]) == ["L2", "L4", "L4"]
    l2 = cone[cone["roman_level"] == "L2"][0]
    assert l2["calib_level"] == 2 and l2["dataproduct_type"] == "image"
    assert l2["access_url"].startswith("file:///")
    assert l2["access_url"].endswith("L2/r0000701001001_wfi01_f158_cal.asdf")
    assert cone["em_min"].unit == u.m and abs(l2["em_min"] - 1.38e-6) < 1e-12
    assert l2["t_max"] > l2["t_min"] > 61000
    assert (
        len(
            svc.search(
                f"SELECT * FROM ivoa.obscore WHERE 1 = INTERSECTS(s_region, "
                f"CIRCLE('ICRS', {RA + 5}, {DEC}, 0.01))"
            )
        )
        == 0
    )
    poly = svc.search(
        f"SELECT product_path FROM roman.products WHERE 1 = CONTAINS("
        f"POINT('ICRS', s_ra, s_dec), POLYGON('ICRS', {RA - 0.1}, {DEC - 0.1}, "
        f"{RA + 0.1}, {DEC - 0.1}, {RA + 0.1}, {DEC + 0.1}, {RA - 0.1}, {DEC + 0.1}))"
        f" AND roman_level = 'L4'"
    ).to_table()
    assert sorted(poly["product_path"]) == [
        "L4/field7_f158_cat.parquet",
        "L4/field7_f158_segm.asdf",
    ]
    # a join: each L4 product with the L2 exposures it overlaps
    join = svc.search(
        "SELECT a.product_path AS l4, b.product_path AS l2 FROM roman.products AS a "
        "JOIN roman.products AS b ON 1 = INTERSECTS(a.s_region, b.s_region) "
        "WHERE a.roman_level = 'L4' AND b.roman_level = 'L2'"
    ).to_table()
    assert len(join) == 2 and set(join["l2"]) == {"L2/r0000701001001_wfi01_f158_cal.asdf"}


def test_astroquery_reaches_the_same_service(tap):
    from astroquery.utils.tap.core import TapPlus

    service, _ = tap
    job = TapPlus(url=service.url, verbose=False).launch_job(
        f"SELECT obs_publisher_did FROM ivoa.obscore WHERE {CONE} AND calib_level = 2"
    )
    assert len(job.get_results()) == 1


def test_visibility_own_team_public(tap):
    service, _ = tap
    assert _l5_names(service, "alice") == ["everyone", "mine", "ours"]
    assert _l5_names(service, "bob") == ["everyone", "ours"]  # team-mate: not alice's private
    assert _l5_names(service, "carol") == ["everyone"]  # another team
    assert _l5_names(service) == ["everyone"]  # anonymous
    # the standard ivoa.obscore view applies the same policy
    did = _l5_row("mine", "private")["obs_publisher_did"]
    query = f"SELECT obs_id FROM ivoa.obscore WHERE obs_publisher_did = '{did}'"
    assert len(_tap(service, "alice").search(query)) == 1
    assert len(_tap(service, "bob").search(query)) == 0
    # a forged login (right name, wrong password) is anonymous, not alice
    assert _l5_names(service, "alice", "guessed-password") == ["everyone"]


L5_QUERY = "SELECT product_path FROM roman.products WHERE roman_level = 'L5'"


def _async_names(svc):
    rows = svc.run_async(L5_QUERY, maxrec=100).to_table()
    return sorted(p.rsplit("/", 1)[-1].split("_")[0] for p in rows["product_path"])


def test_async_jobs_run_as_their_owner_and_only_the_owner_reaches_them(tap):
    """DaCHS runs async jobs in processes of their own; each must still see as its owner."""
    import io

    import pyvo
    import requests
    from astropy.io.votable import parse_single_table

    service, _ = tap
    assert _async_names(_tap(service, "alice")) == ["everyone", "mine", "ours"]
    assert _async_names(_tap(service, "bob")) == ["everyone", "ours"]
    assert _async_names(_tap(service, "carol")) == ["everyone"]
    assert _async_names(_tap(service)) == ["everyone"]  # anonymous
    assert _async_names(_tap(service, "alice", "guessed-password")) == ["everyone"]
    # alice's job: bob, an anonymous client and a forged login cannot read, run or delete it
    job = _tap(service, "alice").submit_job(L5_QUERY, maxrec=100)
    job.run().wait(phases=["COMPLETED", "ERROR"], timeout=120)
    assert job.phase == "COMPLETED"
    result = f"{job.url}/results/result"
    for auth in (("bob", service.password_for("bob")), None, ("alice", "guessed-password")):
        for method, url in (("GET", result), ("GET", job.url), ("DELETE", job.url)):
            r = requests.request(method, url, auth=auth, timeout=30, allow_redirects=False)
            assert r.status_code == 401, (auth and auth[0], method, url, r.status_code)
    mine = requests.get(result, auth=("alice", service.password_for("alice")), timeout=30)
    assert mine.status_code == 200
    paths = parse_single_table(io.BytesIO(mine.content)).to_table()["product_path"]
    assert "users/alice/l5/mine_cat.parquet" in list(paths)
    # bob's job list holds his jobs only
    listed = requests.get(
        f"{service.url}/async", auth=("bob", service.password_for("bob")), timeout=30
    ).text
    assert job.job_id not in listed
    job.delete()
    with pytest.raises(pyvo.dal.DALServiceError):
        _ = pyvo.dal.AsyncTAPJob(job.url, session=_tap(service, "alice")._session).phase


def test_dachs_reads_the_job_limits_the_platform_sets(tap):
    from hub_config.tap.schema import JOB_LIFETIME_S, MAX_RUNNING_JOBS

    service, _ = tap
    for item, value in (
        ("defaultLifetime", JOB_LIFETIME_S),
        ("maxTAPRunning", MAX_RUNNING_JOBS),
        ("defaultMAXREC", 4),
    ):
        assert service._dachs_cli("config", "async", item).strip() == str(value), item


def test_adql_that_targets_a_private_product_sees_nothing(tap):
    service, _ = tap
    svc = _tap(service, "carol")
    did = _l5_row("mine", "private")["obs_publisher_did"]
    for query in (
        f"SELECT * FROM ivoa.obscore WHERE obs_publisher_did = '{did}'",
        "SELECT * FROM roman.products WHERE owner_name = 'alice' AND visibility = 'private'",
        "SELECT COUNT(*) AS n FROM roman.products WHERE visibility IN ('private', 'team')",
    ):
        rows = svc.search(query).to_table()
        assert len(rows) == 0 or ("n" in rows.colnames and rows["n"][0] == 0), query


def test_maxrec_overflow_is_reported(tap):
    import pyvo

    service, _ = tap
    svc = _tap(service, "alice")  # sees 6 rows; the service's default MAXREC is 4
    with pytest.warns(pyvo.dal.exceptions.DALOverflowWarning, match="truncated"):
        result = svc.search("SELECT * FROM ivoa.obscore")
    assert len(result) == 4 and result.query_status == "OVERFLOW"
    asked = svc.search("SELECT * FROM ivoa.obscore", maxrec=2)  # the client's own limit
    assert len(asked) == 2 and asked.query_status == "OVERFLOW"
    assert svc.search("SELECT * FROM ivoa.obscore", maxrec=100).query_status == "OK"
    with pytest.raises(pyvo.dal.DALQueryError, match="no_such_table|No such table|not"):
        svc.search("SELECT * FROM no_such_table")


def test_publish_refuses_overwrite_and_removal_is_owner_only_and_recorded(tap):
    from hub_config.tap.schema import TapError

    service, _ = tap
    row = _l5_row("ours", "team", "lensing")
    with pytest.raises(TapError, match="already published"):
        service.add_product(_l5_row("ours", "public") | {"owner_name": "bob"})
    with pytest.raises(TapError, match="belongs to alice"):
        service.remove_product(row["obs_publisher_did"], by="bob")
    with pytest.raises(TapError, match="survey product"):
        service.remove_product(
            "ivo://roman.platform/products?L4/field7_f158_cat.parquet", by="alice", admin=True
        )
    assert _l5_names(service, "bob") == ["everyone", "ours"]  # nothing changed
    extra = _l5_row("temporary", "public")
    service.add_product(extra)
    service.remove_product(extra["obs_publisher_did"], by="alice", reason="superseded")
    with service.connect() as conn:
        rec = conn.execute(
            "SELECT owner_name, removed_by, reason FROM roman.removals "
            "WHERE obs_publisher_did = %s",
            (extra["obs_publisher_did"],),
        ).fetchall()
    assert rec == [("alice", "alice", "superseded")]


def test_the_local_platform_starts_it_when_configured_or_installed(tmp_path, monkeypatch):
    """The supervisor factory: off by default; on, it hands ROMAN_TAP_URL to user servers."""
    from types import SimpleNamespace

    from hub_config.local.state import StateDir
    from hub_config.local.tap_platform import TapComponent, tap_component

    state = StateDir(tmp_path / "state")
    state.create()
    off = SimpleNamespace(
        config=SimpleNamespace(data=SimpleNamespace(tap=False)), state=state, user_env={}
    )
    assert tap_component(off) is None and off.user_env == {}
    on = SimpleNamespace(
        config=SimpleNamespace(data=SimpleNamespace(tap=True)),
        state=state,
        user_env={"ROMAN_DATA_URL": str(tmp_path)},
    )
    component = tap_component(on)
    assert isinstance(component, TapComponent)
    assert on.user_env["ROMAN_TAP_URL"] == component.service.url
    assert component.store_env["ROMAN_DATA_URL"] == str(tmp_path)
    # unset: on where DaCHS is installed (here), left out where it is not
    default = SimpleNamespace(
        config=SimpleNamespace(data=SimpleNamespace(tap=None)), state=state, user_env={}
    )
    assert isinstance(tap_component(default), TapComponent)
    import hub_config.local.tap_platform as tap_platform

    monkeypatch.setattr(tap_platform, "dachs_available", lambda: "python3-gavo not installed")
    default.user_env.clear()
    assert tap_component(default) is None and default.user_env == {}
    from hub_config.tap.schema import TapError

    monkeypatch.setattr(
        "hub_config.tap.service.dachs_available", lambda: "python3-gavo not installed"
    )
    with pytest.raises(TapError, match="python3-gavo"):  # asked for: an error, not a silent skip
        tap_component(on)


def test_a_published_l5_catalog_reaches_team_mates_by_tap_only(tap, tmp_path, monkeypatch):
    import astropy.units as u
    from astropy.table import QTable

    from platform_lib.data.l5 import did, publish, remove

    service, _ = tap
    monkeypatch.setenv("ROMAN_TEAM_STORE_URL", str(tmp_path / "teams") + "/")
    cat = QTable(
        {"ra": [RA, RA + 1e-4] * u.deg, "dec": [DEC, DEC] * u.deg, "flux": [1.0, 2.0] * u.uJy}
    )
    out = publish(
        cat,
        "lensing-candidates",
        licence="CC-BY-4.0",
        visibility="team",
        team="lensing",
        schema={"ra": "deg", "dec": "deg", "flux": "uJy"},
        registry=service,
        owner="alice",
    )
    query = (
        f"SELECT access_url, licence FROM roman.products WHERE obs_publisher_did = '{did(out.url)}'"
    )
    seen = _tap(service, "bob").search(query).to_table()
    assert list(seen["access_url"]) == [f"file://{out.url}"] and seen["licence"][0] == "CC-BY-4.0"
    assert len(_tap(service, "carol").search(query)) == 0
    # found by a cone too, like any product
    cone = _tap(service, "bob").search(
        f"SELECT obs_id FROM ivoa.obscore WHERE {CONE} AND calib_level = 4"
    )
    assert len(cone) >= 1
    remove(out, by="alice", registry=service, reason="retracted")
    assert len(_tap(service, "bob").search(query)) == 0
    assert not (tmp_path / "teams" / "lensing" / "l5" / "lensing-candidates_cat.parquet").exists()
