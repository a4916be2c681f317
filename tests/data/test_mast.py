"""The MAST adapter, against a LOCAL HTTP server (there is no network here).

The server below answers the requests astroquery.mast makes, with the response shapes MAST
documents for its Mashup API (https://mast.stsci.edu/api/v0/): the columns configuration
(``/portal/Mashup/Mashup.asmx/columnsconfig``), ``Mast.Caom.Filtered.Position`` and
``Mast.Caom.Products`` services on ``/api/v0/invoke`` (``{"status", "msg", "data", "fields",
"paging"}``), and file downloads on ``/api/v0.1/Download/file?uri=``. It filters its small
catalogue of observations the way MAST would (collection, filters, calibration level, cone), so
the test shows that the adapter sends the right criteria and maps the answers.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

OBS_FIELDS = [
    ("obsid", "string"),
    ("obs_collection", "string"),
    ("obs_id", "string"),
    ("filters", "string"),
    ("calib_level", "int"),
    ("s_ra", "float"),
    ("s_dec", "float"),
    ("t_min", "float"),
    ("t_exptime", "float"),
    ("proposal_id", "string"),
    ("s_region", "string"),
    ("instrument_name", "string"),
    ("target_name", "string"),
]
PRODUCT_FIELDS = [
    ("obsID", "string"),
    ("obs_collection", "string"),
    ("productFilename", "string"),
    ("dataURI", "string"),
    ("size", "int"),
    ("calib_level", "int"),
    ("productSubGroupDescription", "string"),
    ("dataproduct_type", "string"),
]


def _obs(obsid, collection, oe, level, ra, dec):
    d = 0.02
    return {
        "obsid": obsid,
        "obs_collection": collection,
        "obs_id": f"r0001{obsid}",
        "filters": oe,
        "calib_level": level,
        "s_ra": ra,
        "s_dec": dec,
        "t_min": 61500.5,
        "t_exptime": 139.8,
        "proposal_id": "1",
        "instrument_name": "WFI",
        "target_name": "HLWAS",
        "s_region": f"POLYGON {ra - d} {dec - d} {ra + d} {dec - d} {ra + d} {dec + d} {ra - d} {dec + d}",
    }


OBSERVATIONS = [
    _obs("101", "ROMAN", "F158", 2, 270.00, 66.00),
    _obs("102", "ROMAN", "F087", 2, 270.01, 66.00),
    _obs("103", "ROMAN", "F158", 1, 270.00, 66.01),
    _obs("104", "ROMAN", "F158", 2, 150.00, 2.00),  # elsewhere on the sky
    _obs("105", "JWST", "F150W", 3, 270.00, 66.00),  # another mission at the same place
]
FILE_BYTES = b"#ASDF 1.0.0\n" + bytes(range(256)) * 8


def _products(obsid):
    o = next(x for x in OBSERVATIONS if x["obsid"] == obsid)
    stem = f"r0001{obsid}_wfi07_{o['filters'].lower()}"
    suffix = "cal" if o["calib_level"] == 2 else "uncal"
    return [
        {
            "obsID": obsid,
            "obs_collection": o["obs_collection"],
            "productFilename": f"{stem}_{suffix}.asdf",
            "dataURI": f"mast:ROMAN/product/{stem}_{suffix}.asdf",
            "size": len(FILE_BYTES),
            "calib_level": o["calib_level"],
            "productSubGroupDescription": suffix.upper(),
            "dataproduct_type": "image",
        },
        {
            "obsID": obsid,
            "obs_collection": o["obs_collection"],
            "productFilename": f"{stem}_preview.jpg",
            "dataURI": f"mast:ROMAN/preview/{stem}.jpg",
            "size": 10,
            "calib_level": o["calib_level"],
            "productSubGroupDescription": "PREVIEW",
            "dataproduct_type": "image",
        },
    ]


def _sep_deg(ra1, dec1, ra2, dec2):
    r1, d1, r2, d2 = map(np.radians, (ra1, dec1, ra2, dec2))
    c = np.sin(d1) * np.sin(d2) + np.cos(d1) * np.cos(d2) * np.cos(r1 - r2)
    return float(np.degrees(np.arccos(np.clip(c, -1, 1))))


class MastHandler(BaseHTTPRequestHandler):
    requests: list[dict] = []

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _json(self, payload, status=200):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length).decode()
        form = urllib.parse.parse_qs(body)
        if self.path.startswith("/portal/Mashup/Mashup.asmx/columnsconfig"):
            # column name -> properties; 'vot.datatype' decides discrete vs continuous filters
            types = {"float": "double", "int": "int", "string": "char"}
            self._json({name: {"vot.datatype": types[t], "text": name} for name, t in OBS_FIELDS})
            return
        if self.path.startswith("/api/v0/invoke"):
            request = json.loads(form["request"][0])
            MastHandler.requests.append(request)
            service, params = request["service"], request["params"]
            if service == "Mast.Caom.Filtered.Position":
                ra, dec, radius = (float(v) for v in params["position"].split(","))
                rows = [
                    o for o in OBSERVATIONS if _sep_deg(ra, dec, o["s_ra"], o["s_dec"]) <= radius
                ]
                for f in params["filters"]:
                    wanted = {str(v) for v in f["values"]}
                    rows = [o for o in rows if str(o[f["paramName"]]) in wanted]
                fields = OBS_FIELDS
            elif service == "Mast.Caom.Products":
                rows = [p for obsid in params["obsid"].split(",") for p in _products(obsid)]
                fields = PRODUCT_FIELDS
            else:
                self._json(
                    {
                        "status": "ERROR",
                        "msg": f"unknown service {service}",
                        "data": [],
                        "fields": [],
                    }
                )
                return
            self._json(
                {
                    "status": "COMPLETE",
                    "msg": "",
                    "fields": [{"name": n, "type": t} for n, t in fields],
                    "data": rows,
                    "paging": {
                        "page": 1,
                        "pageSize": len(rows),
                        "pagesFiltered": 1,
                        "rows": len(rows),
                        "rowsFiltered": len(rows),
                        "rowsTotal": len(rows),
                    },
                }
            )
            return
        self.send_error(404)

    def _download(self, head: bool):
        url = urllib.parse.urlparse(self.path)
        if url.path != "/api/v0.1/Download/file":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(FILE_BYTES)))
        self.end_headers()
        if not head:
            self.wfile.write(FILE_BYTES)

    def do_GET(self):
        self._download(head=False)

    def do_HEAD(self):
        self._download(head=True)


@pytest.fixture
def mast_server():
    MastHandler.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), MastHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_cone_search_returns_roman_products_in_the_cone(mast_server):
    from platform_lib.data.mast import MastArchive

    archive = MastArchive(mast_server)
    table = archive.search((270.0, 66.0, 0.05))
    assert sorted(table["path"]) == [
        "mast:ROMAN/product/r0001101_wfi07_f158_cal.asdf",
        "mast:ROMAN/product/r0001102_wfi07_f087_cal.asdf",
        "mast:ROMAN/product/r0001103_wfi07_f158_uncal.asdf",
    ]  # not JWST's, not the one elsewhere, not the previews
    row = table[table["path"] == "mast:ROMAN/product/r0001101_wfi07_f158_cal.asdf"][0]
    assert (row["level"], row["optical_element"], row["detector"], row["source"]) == (
        "L2",
        "F158",
        "WFI07",
        "mast",
    )
    assert row["start_time"].startswith("2027-") and row["exposure_time"] == pytest.approx(139.8)
    sent = MastHandler.requests[0]
    assert sent["service"] == "Mast.Caom.Filtered.Position"
    assert {"paramName": "obs_collection", "values": ["ROMAN"]} in sent["params"]["filters"]


def test_filters_are_sent_to_mast(mast_server):
    from platform_lib.data.mast import MastArchive

    archive = MastArchive(mast_server)
    table = archive.search((270.0, 66.0, 0.05), optical_element="F158", level="L2")
    assert list(table["path"]) == ["mast:ROMAN/product/r0001101_wfi07_f158_cal.asdf"]
    filters = {f["paramName"]: f["values"] for f in MastHandler.requests[-2]["params"]["filters"]}
    assert filters == {"obs_collection": ["ROMAN"], "filters": ["F158"], "calib_level": ["2"]}
    assert len(archive.search((150.0, -40.0, 0.1))) == 0


def test_search_merges_store_and_mast_and_download(mast_server, tmp_path):
    from platform_lib.data import search
    from platform_lib.data.mast import MastArchive
    from platform_lib.data.store import get_store

    store = get_store(tmp_path / "empty")
    (tmp_path / "empty").mkdir()
    archive = MastArchive(mast_server)
    table = search((270.0, 66.0, 0.05), level="L2", store=store, mast=archive)
    assert set(table["source"]) == {"mast"} and len(table) == 2
    local = archive.download(table[0], tmp_path / "downloads")
    assert local.read_bytes() == FILE_BYTES and local.name.endswith(".asdf")
