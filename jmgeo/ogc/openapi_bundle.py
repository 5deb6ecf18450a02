"""A self-contained OGC OpenAPI document: no ``$ref`` leaves the platform.

pygeoapi writes its OpenAPI document with ``$ref`` URLs into the OGC's schema
repositories (schemas.opengis.net, raw GitHub): about a hundred per audience, to a
handful of building blocks (the Features responses, the Tiles path parameters, a link,
an exception, CQL2 …). A client on the offline government network cannot resolve them,
so Swagger UI shows errors and code generators fail. :func:`bundle` rewrites each such
reference to a component of the document itself (``#/components/...``) and adds the
components, authored from the standards' text in ``ogc-openapi-components.yml``
(package data beside this module). A reference it does not know is left as it is and
logged: the test suite fails on it (``tests/test_offline.py``), so a pygeoapi upgrade
that writes a new one is caught before it ships.
"""

from __future__ import annotations

import copy
import logging
from functools import lru_cache
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import yaml

LOGGER = logging.getLogger(__name__)
COMPONENTS_FILE = "ogc-openapi-components.yml"


@lru_cache
def building_blocks() -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """(external reference key → ``kind/name``, the authored components by kind)."""
    text = resources.files("jmgeo.ogc").joinpath(COMPONENTS_FILE).read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    return data["refs"], data["components"]


def reference_key(ref: str) -> str | None:
    """The key of an external reference: its document's file name and its fragment
    (``ogcapi-features-1.yaml#/components/responses/NotFound``); None for a local one."""
    if ref.startswith("#"):
        return None
    document, _, fragment = ref.partition("#")
    name = urlsplit(document).path.rstrip("/").rsplit("/", 1)[-1]
    return f"{name}#{fragment}" if fragment else name


def external_refs(document: Any) -> set[str]:
    """Every ``$ref`` of ``document`` that does not point into the document itself."""
    found: set[str] = set()
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#"):
                found.add(ref)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def bundle(oas: dict[str, Any]) -> dict[str, Any]:
    """Rewrite ``oas`` (in place, and return it) so every OGC building block it refers
    to is one of its own components. pygeoapi's own components keep their names; an
    authored one is only added where the name is free (the same block, or ours)."""
    mapping, authored = building_blocks()
    used: set[str] = set()
    unknown: set[str] = set()

    def rewrite(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#"):
                target = mapping.get(reference_key(ref) or "")
                if target is None:
                    unknown.add(ref)
                else:
                    node["$ref"] = f"#/components/{target}"
                    used.add(target)
            for value in node.values():
                rewrite(value)
        elif isinstance(node, list):
            for value in node:
                rewrite(value)

    rewrite(oas)
    components = oas.setdefault("components", {})
    # the authored components refer to each other: add what the used ones need too
    pending = sorted(used)
    while pending:
        kind, _, name = pending.pop().partition("/")
        block = authored.get(kind, {}).get(name)
        if block is None:  # a mapping to a component we did not write: a bug in the YAML
            raise KeyError(f"{COMPONENTS_FILE}: refs names {kind}/{name}, not written")
        section = components.setdefault(kind, {})
        if name in section:
            continue
        section[name] = copy.deepcopy(block)
        for inner in _local_targets(block):
            if inner not in used:
                used.add(inner)
                pending.append(inner)
    if unknown:
        LOGGER.warning("OpenAPI: %d external $ref not bundled (add them to %s): %s",
                       len(unknown), COMPONENTS_FILE, ", ".join(sorted(unknown)))
    return oas


def _local_targets(node: Any) -> set[str]:
    """The ``kind/name`` of every ``#/components/...`` reference inside ``node``."""
    out: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/"):
                out.add(ref.removeprefix("#/components/"))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return out
