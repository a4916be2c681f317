"""Every tutorial in notebooks/ runs top to bottom inside a spawned user server on the local platform.

``roman-platform up`` (SeaweedFS, the OIDC provider, JupyterHub, dask-gateway-server) runs as a
subprocess; the operator's part stages the small sample survey (``platform_lib.sample``:
romanisim cutouts, two optical elements, two epochs, the PSF library) into the survey store;
the demo user ``alice`` logs in through the OIDC flow and gets ONE JupyterLab server. Each
tutorial is uploaded to that server (contents API), opened as a notebook session (a kernel of
its own, its working folder the notebook's) and executed cell by cell through the kernel's
websocket.

The platform runs its TAP/ObsCore service (``data.tap``: DaCHS on PostgreSQL), which publishes
the store's index when it starts, before the sample exists; the operator's part publishes it
again once the sample is made. Tutorial 13 shows who sees a team's product by TAP: ``bob``
(alice's team-mate) and ``carol`` (in no team) log in once and the test hands their API tokens
to the notebook in ``tutorials/13_colleagues.json`` (a person would run the query in their own
server). The outputs are recorded into the notebook, which is saved back to the server and
to the test's folder. A tutorial fails on an error output (a failed ``assert`` is one: the
science checks are asserts in the notebooks) and when it shows no inline figure.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import nbformat
import pytest
import requests

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT = 600.0  # seconds for one cell
FOLDER = "tutorials"  # where the notebooks are uploaded in alice's home
TEAM = "hlwas-weak-lensing"  # the team alice works in (tutorial 12), made by the operator
TEAM_MATE, OUTSIDER = "bob", "carol"  # in alice's team / in none (tutorial 13)
COLLEAGUES_FILE = "13_colleagues.json"  # their API tokens, for tutorial 13's visibility checks


def _platform_fixtures() -> Any:
    """The local platform's test helpers (tests/support/platform.py)."""
    from tests.support import platform

    return platform


def inline_figures(nb: nbformat.NotebookNode) -> int:
    """How many ``image/png`` outputs the executed notebook shows (what JupyterLab renders)."""
    return sum(
        "image/png" in o.get("data", {})
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") in ("display_data", "execute_result")
    )


def stream_text(nb: nbformat.NotebookNode) -> str:
    """Everything the executed notebook printed."""
    return "".join(
        o.get("text", "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "stream"
    )


def error_outputs(nb: nbformat.NotebookNode) -> list[dict]:
    return [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]


class NotebookSession:
    """A notebook opened in a Jupyter server: a session (and its kernel) for the notebook's path,
    driven over the kernel's websocket; outputs come back as nbformat outputs."""

    def __init__(self, server_url: str, token: str, path: str) -> None:
        import websocket  # websocket-client

        self.server_url = server_url
        self.headers = {"Authorization": f"token {token}"}
        r = requests.post(
            f"{server_url}api/sessions",
            json={
                "path": path,
                "name": Path(path).name,
                "type": "notebook",
                "kernel": {"name": "python3"},
            },
            headers=self.headers,
            timeout=60,
        )
        assert r.status_code == 201, f"session start failed: {r.status_code} {r.text}"
        self.session_id = r.json()["id"]
        self.kernel_id = r.json()["kernel"]["id"]
        ws_url = server_url.replace("http://", "ws://") + f"api/kernels/{self.kernel_id}/channels"
        self.ws = websocket.create_connection(
            ws_url, header=[f"Authorization: token {token}"], timeout=CELL_TIMEOUT
        )
        self.session = uuid.uuid4().hex

    def run_cell(self, code: str) -> tuple[list[nbformat.NotebookNode], int | None]:
        """Execute one cell: its outputs (as the notebook stores them) and execution count."""
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "username": "alice",
            "session": self.session,
            "msg_type": "execute_request",
            "version": "5.3",
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        self.ws.send(
            json.dumps(
                {
                    "header": header,
                    "parent_header": {},
                    "metadata": {},
                    "channel": "shell",
                    "buffers": [],
                    "content": content,
                }
            )
        )
        outputs: list[nbformat.NotebookNode] = []
        count: int | None = None
        deadline = time.monotonic() + CELL_TIMEOUT
        while time.monotonic() < deadline:
            msg = _ws_message(self.ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "execute_input":
                count = msg["content"].get("execution_count")
            elif kind == "clear_output":
                outputs.clear()
            elif kind in ("stream", "display_data", "execute_result", "error"):
                out = nbformat.v4.output_from_msg(msg)
                if kind == "stream" and outputs and outputs[-1].get("name") == out.name:
                    outputs[-1].text += out.text
                else:
                    outputs.append(out)
            elif kind == "status" and msg["content"].get("execution_state") == "idle":
                return outputs, count
        raise AssertionError(f"cell did not finish within {CELL_TIMEOUT} s:\n{code[:400]}")

    def close(self) -> None:
        self.ws.close()
        requests.delete(
            f"{self.server_url}api/sessions/{self.session_id}", headers=self.headers, timeout=30
        )


def _ws_message(frame: str | bytes) -> dict:
    """A kernel message from a websocket frame: text is JSON; a binary frame (a widget's comm
    message with buffers, e.g. jdaviz's viewers) is Jupyter's framing: a big-endian uint32 count,
    that many uint32 offsets, the JSON message at the first offset, then the buffers."""
    if isinstance(frame, str):
        return json.loads(frame)
    n = int.from_bytes(frame[:4], "big")
    offsets = [int.from_bytes(frame[4 + 4 * i : 8 + 4 * i], "big") for i in range(n)]
    end = offsets[1] if n > 1 else len(frame)
    return json.loads(frame[offsets[0] : end])


def upload(server_url: str, token: str, nb: nbformat.NotebookNode, path: str) -> None:
    r = requests.put(
        f"{server_url}api/contents/{path}",
        json={"type": "notebook", "format": "json", "content": nb},
        headers={"Authorization": f"token {token}"},
        timeout=60,
    )
    assert r.status_code in (200, 201), f"upload of {path} failed: {r.status_code} {r.text}"


def execute_in_server(server_url: str, token: str, source: Path) -> nbformat.NotebookNode:
    """Upload ``source``, open it, run every code cell (stop at the first error), save it."""
    nb = nbformat.read(source, as_version=4)
    path = f"{FOLDER}/{source.name}"
    upload(server_url, token, nb, path)
    notebook = NotebookSession(server_url, token, path)
    try:
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            cell.outputs, cell.execution_count = notebook.run_cell(cell.source)
            if any(o.output_type == "error" for o in cell.outputs):
                break
    finally:
        notebook.close()
    upload(server_url, token, nb, path)  # the executed notebook, as the user would find it
    return nb


def _make_team(fixtures: Any, hub_url: str, team: str, members: list[str]) -> None:
    """What an operator does for a new team: the platform admin creates it in the quota service,
    gives it an allocation for this period and adds its members (known users: they have logged in
    once; a platform admin's addition needs no invitation), before they start their servers
    (which take the team's credentials)."""
    import datetime as dt

    session = requests.Session()
    fixtures.hub_login(session, hub_url, "admin")
    headers = {"Authorization": f"token {fixtures.api_token(session, hub_url, 'admin')}"}
    quota = f"{hub_url}/services/quota/api"
    now = dt.datetime.now(dt.UTC)
    for path, body in [
        ("teams", {"name": team}),
        (
            "allocations",
            {
                "team": team,
                "core_hours": 500,
                "period_start": (now - dt.timedelta(hours=1)).isoformat(),
                "period_end": (now + dt.timedelta(days=30)).isoformat(),
            },
        ),
        *[(f"teams/{team}/members", {"username": m}) for m in members],
    ]:
        r = requests.post(f"{quota}/{path}", json=body, headers=headers, timeout=30)
        assert r.status_code == 201, (path, r.status_code, r.text)


def _publish_to_tap(settings: dict, store: Any) -> int:
    """Publish the store's index (now with the sample) to the platform's TAP service, as the
    service does at start: through a handle on the running DaCHS (its settings section)."""
    from hub_config.tap.catalog import publish_index
    from hub_config.tap.service import TapService
    from platform_lib import env_contract

    env = settings["tap"]["environment"]
    tap = TapService.attach(
        env[env_contract.TAP_ROOT],
        port=int(env[env_contract.TAP_PORT]),
        pg_port=int(env[env_contract.TAP_PG_PORT]),
        secret=env[env_contract.TAP_SECRET],
    )
    n = publish_index(tap, store)
    assert n > 0, "the sample's index published no ObsCore rows"
    return n


@pytest.fixture(scope="module")
def tutorial_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The local platform, the sample survey in its store, alice's server: (url, token, home)."""
    from platform_lib.data import get_store
    from platform_lib.sample import SampleSpec, make_sample

    fixtures = _platform_fixtures()
    base = tmp_path_factory.mktemp("tutorial-platform")
    work = base / "work"
    work.mkdir()
    # As an astronomer meets it on a shared machine: alice's server, kernels and Dask workers
    # run as her own system account where the tests run as root (CI), else as this account.
    system = fixtures.system_accounts_possible()
    cleanup = contextlib.ExitStack()
    state = cleanup.enter_context(fixtures.traversable_state_dir()) if system else base / "state"
    config = fixtures.platform_config(
        accounts={"mode": "system" if system else "shared"},
        demo={
            "users": ["alice", TEAM_MATE, OUTSIDER],
            "admin_users": ["admin"],
            "password": fixtures.DEMO_PASSWORD,
        },
        data={"sample": False, "tap": True},
    )
    platform = fixtures.RunningPlatform(work, state, config)
    try:
        platform.start()
        settings = json.loads((state / "settings.json").read_text())
        env = settings["singleuser"]["environment"]
        store = get_store(
            env["ROMAN_DATA_URL"],
            endpoint=env["ROMAN_DATA_S3_ENDPOINT"],
            key=env["AWS_ACCESS_KEY_ID"],
            secret=env["AWS_SECRET_ACCESS_KEY"],
        )
        spec = SampleSpec(
            detectors=("WFI01",), optical_elements=("F158", "F087"), epochs=2, size=128
        )
        make_sample(store, spec, progress=False)
        _publish_to_tap(settings, store)
        # tutorials 12 and 13: a first login makes each user known, then the operator makes
        # alice's team, with bob in it (carol stays in none)
        colleagues = {}
        for user in ("alice", TEAM_MATE, OUTSIDER):
            session = requests.Session()
            fixtures.hub_login(session, platform.url, user)
            if user != "alice":
                colleagues[user] = fixtures.api_token(session, platform.url, user)
        _make_team(fixtures, platform.url, TEAM, ["alice", TEAM_MATE])
        token, server_url = fixtures.login_and_spawn(platform.url, "alice")
        headers = {"Authorization": f"token {token}"}
        r = requests.put(
            f"{server_url}api/contents/{FOLDER}",
            json={"type": "directory"},
            headers=headers,
            timeout=60,
        )
        assert r.status_code in (200, 201), r.text
        body = {
            "team_mate": {"name": TEAM_MATE, "token": colleagues[TEAM_MATE]},
            "outsider": {"name": OUTSIDER, "token": colleagues[OUTSIDER]},
        }
        r = requests.put(
            f"{server_url}api/contents/{FOLDER}/{COLLEAGUES_FILE}",
            json={"type": "file", "format": "text", "content": json.dumps(body)},
            headers=headers,
            timeout=60,
        )
        assert r.status_code in (200, 201), r.text
        from hub_config.local.spawner import user_folder_name
        from hub_config.local.state import StateDir

        yield server_url, token, StateDir(state).users_dir / user_folder_name("alice")
    finally:
        if platform.proc and platform.proc.poll() is None:
            platform.stop()
        platform.kill_leftovers()
        # run as root, the TAP service's PostgreSQL cluster lives outside the state folder
        from hub_config.local.tap_platform import platform_pg_dir

        pg_dir = platform_pg_dir(state)
        if pg_dir is not None:
            import shutil

            shutil.rmtree(pg_dir, ignore_errors=True)
        cleanup.close()


def test_there_are_tutorials() -> None:
    assert len(NOTEBOOKS) >= 1


def test_a_failed_science_check_fails_the_tutorial() -> None:
    """The checks the runner applies: an error output (a failed assert) and no inline figure."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("assert 1 == 2")
    cell.outputs = [
        nbformat.v4.new_output("error", ename="AssertionError", evalue="", traceback=[])
    ]
    nb.cells = [cell]
    assert error_outputs(nb) and inline_figures(nb) == 0
    cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": "iVBOR"})]
    assert not error_outputs(nb) and inline_figures(nb) == 1


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_tutorial_runs_in_a_user_server(path: Path, tutorial_server: Any, tmp_path: Path) -> None:
    server_url, token, _ = tutorial_server
    t0 = time.monotonic()
    nb = execute_in_server(server_url, token, path)
    seconds = time.monotonic() - t0
    nbformat.write(nb, tmp_path / path.name)
    print(f"{path.name}: {seconds:.1f} s in alice's server")
    errors = error_outputs(nb)
    assert not errors, f"{path.name}:\n" + "\n".join(
        "\n".join(e.get("traceback", [])) or f"{e.ename}: {e.evalue}" for e in errors
    )
    assert inline_figures(nb) >= 1, (
        f"{path.name} shows no inline figure (matplotlib Agg or savefig only?)"
    )
    if path.name.startswith("13_"):
        # the visibility checks ran with the colleagues' tokens (not the notebook's fallback)
        shown = stream_text(nb)
        assert f"{TEAM_MATE} (team-mate) sees 1 row" in shown, shown[-2000:]
        assert f"{OUTSIDER} (not in the team) sees 0 rows" in shown, shown[-2000:]


@pytest.mark.slow
def test_the_user_server_serves_the_tools(tutorial_server: Any) -> None:
    """In alice's spawned server: resource usage, a git repository made and committed to (with
    the e-mail of her login, which the spawner hands to git), the workshop link of nbgitpuller,
    and two collaborators editing one notebook in real time (images/notebook/smoke/check_tools.py,
    which the image test runs against the image's server too)."""
    import subprocess

    server_url, token, home = tutorial_server
    check = Path(__file__).resolve().parents[2] / "images" / "notebook" / "smoke" / "check_tools.py"
    proc = subprocess.run(
        [sys.executable, str(check), "--server", server_url, "--token", token, "--root", str(home)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(report["ok"]) == {"resource_usage", "git", "nbgitpuller", "collaboration"}, report
    # the status bar's memory figure is against her profile's limit (the spawner's MEM_LIMIT)
    assert "memory limit" in report["ok"]["resource_usage"], report
    # read as the test's account; with per-user accounts the repository is alice's, which git
    # refuses to read for another owner unless told it is safe
    log = subprocess.run(
        ["git", "-c", "safe.directory=*", "-C", str(next(home.glob("workshop-*")))]
        + ["log", "-1", "--format=%ae"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert log.stdout.strip() == "alice@myst.example.invalid"  # her login's e-mail claim
