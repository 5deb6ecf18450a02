"""One pygeoapi ``API`` per audience: callers who may see exactly the same collections
under the same access share one instance (``jmgeo.ogc.config.fingerprint``)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import UTC, datetime

from jmgeo.ogc import config as ogc_config
from jmgeo.ogc import maps as ogc_maps
from jmgeo.ogc import records as ogc_records
from jmgeo.ogc.compat import API, get_oas
from jmgeo.ogc.openapi_bundle import bundle
from jmgeo.replicas import read_connection
from layers.grants import next_change
from layers.policy import Caller
from layers.registry import audience_epoch

_MAX_AUDIENCES = 64
_MAX_CALLERS = 256  # (base URL, role, department) audiences kept by epoch


class AudienceCache:
    """LRU of (fingerprint → API), and which one each kind of caller gets.

    Building an API + OpenAPI costs ~100 ms; deciding a caller's audience (the registry,
    its grants, the box of a region grant) three queries. Both are kept: a request whose
    caller's audience is known costs one single-row read — the registry and access epochs
    (``layers.registry.audience_epoch``) — while neither has moved and no grant of its
    department has started or ended since (``layers.grants.next_change``). The key is
    what of the caller an audience is made of (``jmgeo.ogc.records.audience``: role and
    department, never the key id or name), so callers alike share it. A change anywhere — a publish, a
    reclassification, a grant revoked in psql — is seen by the very next request."""

    def __init__(self, size: int = _MAX_AUDIENCES):
        self.size = size
        self._apis: OrderedDict[str, tuple[API, dict]] = OrderedDict()
        self._lock = threading.Lock()
        # (base URL, *records.audience) → (epochs, good until, entry)
        self._callers: OrderedDict[tuple, tuple[tuple[int, int], datetime | None,
                                                tuple[API, dict]]] = OrderedDict()

    def get(self, caller: Caller, base_url: str) -> tuple[API, dict]:
        who = (base_url, *ogc_records.audience(caller).values())
        with read_connection() as conn:
            epochs = audience_epoch(conn)
            with self._lock:
                hit = self._callers.get(who)
                if hit is not None:
                    self._callers.move_to_end(who)
            if hit is not None and hit[0] == epochs and (
                    hit[1] is None or datetime.now(UTC) < hit[1]):
                return hit[2]
            # read before the audience: a grant that starts meanwhile ends the entry early
            until = next_change(conn, caller.data_dept)
            resources, accesses = ogc_config.audience_resources(conn, caller)
        entry = self._entry(resources, accesses, base_url)
        with self._lock:  # an audience read after a change is kept under the older
            self._callers[who] = (epochs, until, entry)  # epochs: rebuilt next time
            self._callers.move_to_end(who)
            while len(self._callers) > _MAX_CALLERS:
                self._callers.popitem(last=False)
        return entry

    def _entry(self, resources: dict, accesses: dict, base_url: str) -> tuple[API, dict]:
        key = ogc_config.fingerprint(resources, base_url)
        with self._lock:
            hit = self._apis.get(key)
            if hit is not None:
                self._apis.move_to_end(key)
                return hit
        cfg = ogc_config.build_config(resources, base_url)
        oas = bundle(ogc_maps.declare_map_formats(ogc_config.declare_extra_parameters(
            get_oas(cfg, fail_on_invalid_collection=False), resources)))
        api = API(cfg, oas)
        entry = (api, accesses)
        with self._lock:
            self._apis[key] = entry
            while len(self._apis) > self.size:
                self._apis.popitem(last=False)
        return entry

    def clear(self) -> None:
        with self._lock:
            self._apis.clear()
            self._callers.clear()


AUDIENCES = AudienceCache()
