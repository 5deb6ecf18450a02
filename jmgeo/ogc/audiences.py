"""One pygeoapi ``API`` per audience: callers who may see exactly the same collections
under the same access share one instance (``jmgeo.ogc.config.fingerprint``)."""

from __future__ import annotations

import threading
from collections import OrderedDict

from jmgeo.ogc import config as ogc_config
from jmgeo.ogc import maps as ogc_maps
from jmgeo.ogc.compat import API, get_oas
from jmgeo.ogc.openapi_bundle import bundle
from jmgeo.replicas import read_connection
from layers.policy import Caller, registry_epoch

_MAX_AUDIENCES = 64
_MAX_BASE_URLS = 8  # the platform's public URL; a few more when it is taken from Host


class AudienceCache:
    """LRU of (fingerprint → API). Building an API + OpenAPI costs ~100 ms; a request
    that finds its audience here costs one registry query; an anonymous one, while the
    registry is unchanged (``layers.policy.registry_epoch``), a one-row read."""

    def __init__(self, size: int = _MAX_AUDIENCES):
        self.size = size
        self._apis: OrderedDict[str, tuple[API, dict]] = OrderedDict()
        self._lock = threading.Lock()
        # base URL → (registry epoch, entry): what every anonymous caller sees; an
        # open tile or items page then costs one single-row read of the registry
        self._anonymous: dict[str, tuple[int, tuple[API, dict]]] = {}

    def get(self, caller: Caller, base_url: str) -> tuple[API, dict]:
        anonymous = caller.kind == "anonymous"
        with read_connection() as conn:
            if anonymous:  # every anonymous caller sees the same: kept while unchanged
                epoch = registry_epoch(conn)
                with self._lock:
                    hit = self._anonymous.get(base_url)
                if hit is not None and hit[0] == epoch:
                    return hit[1]
            resources, accesses = ogc_config.audience_resources(conn, caller)
        entry = self._entry(resources, accesses, base_url)
        if anonymous:
            with self._lock:
                self._anonymous.pop(base_url, None)
                self._anonymous[base_url] = (epoch, entry)
                while len(self._anonymous) > _MAX_BASE_URLS:  # oldest first
                    del self._anonymous[next(iter(self._anonymous))]
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
            self._anonymous.clear()


AUDIENCES = AudienceCache()
