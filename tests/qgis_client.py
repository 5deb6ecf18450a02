"""QGIS as an office runs it: open one layer of the platform, print what QGIS sees (JSON).

Run by tests/test_qgis.py under Debian's /usr/bin/python3 with ``python3-qgis`` (PyQGIS
3.22), never under the project's venv: this file imports nothing of the platform. Each
run is a fresh QGIS with its own temporary profile, so no network cache or stored
credential outlives it::

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 tests/qgis_client.py \\
        oapif http://127.0.0.1:5000/ogc tpol_conditional [API_KEY]
    ... qgis_client.py vectortile http://127.0.0.1:5000/ogc/collections/x/tiles/\\
        WebMercatorQuad/{z}/{y}/{x}?f=mvt x 12 113.08 22.58

``oapif``: the layer through QGIS's OGC API - Features provider (``OAPIF``). With a key,
the key is the password of QGIS's built-in Basic authentication (an auth config in a
``QgsAuthManager`` on a temporary auth database with a master password; user name
``qgis``), the only way QGIS 3.22 can send one. Printed: ``valid``, the provider's
error, the HTTP answers it got (status and URL), the field names, the CRS and every
feature (``id`` — the feature's id as QGIS
reads it, attributes and WKT).

``oapif-seq URL COLLECTION KEY|- ...``: several opens in one QGIS (one network cache,
one session), in order — what a desktop user does who switches credentials.

``vectortile``: the XYZ vector tiles at a zoom, drawn by QGIS's ``vectortile`` provider
around a lon/lat (see :func:`draw_vector_tiles`).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

PROFILE = tempfile.mkdtemp(prefix="jmgeo-qgis-")
os.environ["QGIS_AUTH_DB_DIR_PATH"] = PROFILE  # a temporary auth DB, never the user's
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (  # noqa: E402 — after the environment QGIS reads at import
    Qgis,
    QgsApplication,
    QgsAuthMethodConfig,
    QgsDataSourceUri,
    QgsNetworkAccessManager,
    QgsVectorLayer,
)
from qgis.PyQt.QtNetwork import QNetworkRequest  # noqa: E402

MASTER_PASSWORD = "jmgeo-test-master"


def basic_auth_config(key: str) -> str:
    """The id of a new Basic auth config whose password is the API key."""
    manager = QgsApplication.authManager()
    if not manager.masterPasswordIsSet():
        if not manager.setMasterPassword(MASTER_PASSWORD, True):
            raise SystemExit("QGIS refused the master password of the temporary auth DB")
    config = QgsAuthMethodConfig("Basic")
    config.setName("jmgeo")
    config.setConfig("username", "qgis")
    config.setConfig("password", key)
    ok = manager.storeAuthenticationConfig(config)
    if isinstance(ok, tuple):  # some PyQGIS builds return (ok, config)
        ok, config = ok
    if not ok or not config.id():
        raise SystemExit("QGIS could not store the Basic auth config")
    return config.id()


def open_oapif(url: str, collection: str, key: str | None) -> dict:
    uri = QgsDataSourceUri()
    uri.setParam("url", url)
    uri.setParam("typename", collection)
    uri.setParam("restrictToRequestBBOX", "0")
    if key:
        uri.setAuthConfigId(basic_auth_config(key))
    layer = QgsVectorLayer(uri.uri(False), collection, "OAPIF")
    out: dict = {"qgis": Qgis.version(), "uri": uri.uri(False).replace(key or "\0", "***"),
                 "valid": layer.isValid(), "features": []}
    if not layer.isValid():  # (an invalid layer's error() and provider crash 3.22)
        return out
    out["fields"] = [f.name() for f in layer.fields()]
    out["crs"] = layer.crs().authid()
    out["feature_count"] = layer.featureCount()
    for feature in layer.getFeatures():
        geom = feature.geometry()
        out["features"].append({
            "attributes": {f.name(): _plain(feature[f.name()]) for f in layer.fields()},
            "wkt": geom.asWkt(6) if not geom.isNull() else None})
    return out


def _plain(value):
    """A QVariant-ish attribute as JSON: NULL → None, numbers and text as they are."""
    if value is None or (hasattr(value, "isNull") and value.isNull()):
        return None
    return value if isinstance(value, int | float | str | bool) else str(value)


def draw_vector_tiles(template: str, zoom: int, lon: float, lat: float) -> dict:
    """The XYZ vector tiles drawn by QGIS (its own fetch, MVT decoding and default
    vector-tile style; PyQGIS 3.22 exposes no MVT decoder) on a 256×256 transparent
    image of the z ``zoom`` tile around lon/lat: the count of painted pixels, and of
    those in a same-sized image one tile-width east of it."""
    from qgis.core import (
        QgsCoordinateReferenceSystem,
        QgsCoordinateTransform,
        QgsMapRendererSequentialJob,
        QgsMapSettings,
        QgsPointXY,
        QgsProject,
        QgsRectangle,
        QgsVectorTileLayer,
    )
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor

    uri = QgsDataSourceUri()
    uri.setParam("type", "xyz")
    uri.setParam("url", template)
    uri.setParam("zmin", str(zoom))
    uri.setParam("zmax", str(zoom))
    layer = QgsVectorTileLayer(bytes(uri.encodedUri()).decode(), "tiles")
    out: dict = {"qgis": Qgis.version(), "valid": layer.isValid()}
    if not layer.isValid():
        return out
    mercator = QgsCoordinateReferenceSystem("EPSG:3857")
    centre = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), mercator,
                                    QgsProject.instance()).transform(QgsPointXY(lon, lat))
    half = 2 * 20037508.342789244 / 2 ** zoom / 2
    for key, shift in (("painted", 0.0), ("painted_east", 2 * half)):
        settings = QgsMapSettings()
        settings.setLayers([layer])
        settings.setDestinationCrs(mercator)
        settings.setOutputSize(QSize(256, 256))
        settings.setBackgroundColor(QColor(0, 0, 0, 0))
        x = centre.x() + shift
        settings.setExtent(QgsRectangle(x - half, centre.y() - half, x + half,
                                        centre.y() + half))
        job = QgsMapRendererSequentialJob(settings)
        job.start()
        job.waitForFinished()
        image = job.renderedImage()
        out[key] = sum(1 for r in range(image.height()) for c in range(image.width())
                       if QColor.fromRgba(image.pixel(c, r)).alpha() > 0)
    return out


def main(argv: list[str]) -> int:
    app = QgsApplication([], False, PROFILE)
    app.initQgis()
    messages: list[str] = []  # what QGIS logs (a provider's HTTP errors land here)
    QgsApplication.messageLog().messageReceived.connect(
        lambda text, tag, _level: messages.append(f"{tag}: {text}"))
    requests: list[str] = []  # every HTTP answer QGIS got: "status URL"
    QgsNetworkAccessManager.instance().finished.connect(
        lambda reply: requests.append(
            f"{reply.attribute(QNetworkRequest.HttpStatusCodeAttribute)} "
            f"{reply.request().url().toString()}"))
    try:
        if argv[1] == "oapif":
            result = open_oapif(argv[2], argv[3], argv[4] if len(argv) > 4 else None)
        elif argv[1] == "oapif-seq":  # url, then pairs: collection, key or "-"
            pairs = zip(argv[3::2], argv[4::2], strict=True)
            result = {"opens": [open_oapif(argv[2], coll, None if key == "-" else key)
                                for coll, key in pairs]}
        elif argv[1] == "vectortile":
            result = draw_vector_tiles(argv[2], int(argv[4]), float(argv[5]), float(argv[6]))
        else:
            raise SystemExit(f"unknown command {argv[1]!r}")
        QgsApplication.processEvents()
        result["log"] = messages
        result["requests"] = requests
        print(json.dumps(result, ensure_ascii=False))
    finally:
        app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
