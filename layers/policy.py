"""The sharing policy (共享规则): what may this caller see of this layer?

One module answers it; every way out (OGC collections, items, tiles, coverages, records,
downloads, region queries, exports) asks here and obeys. The rule is DESIGN.md §5:

| caller            | open | unconditional | conditional                | not_shared |
| anonymous         | data | –             | –                          | –          |
| any department    | data | data          | entry; data with live grant | entry      |
| owner department  | data | data          | data                       | data       |

"–" means the layer does not exist for that caller. The answer is either ``None`` (no
data) or an ``Access``: the visible fields, the masks, the row restriction by region, and
the grant that justifies it (for the audit log).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CALLER_KINDS = ("anonymous", "department", "admin", "auditor")


@dataclass(frozen=True)
class Caller:
    """Who is asking. Departments act through users or machine clients (API keys)."""

    kind: str = "anonymous"
    dept_code: str | None = None
    name: str = "anonymous"
    key_id: int | None = None

    @property
    def is_department(self) -> bool:
        return self.kind == "department" and self.dept_code is not None


ANONYMOUS = Caller()


@dataclass(frozen=True)
class Access:
    """What a caller may have of one layer's data."""

    layer: str
    sharing_class: str
    fields: tuple[str, ...] | None = None  # None: every field
    masks: dict[str, str] = field(default_factory=dict)  # field -> mask kind
    regions: tuple[str, ...] | None = None  # None: no row restriction
    grant_id: int | None = None
    purpose: str | None = None

    @property
    def audited(self) -> bool:
        """Every access to non-open data is audited."""
        return self.sharing_class != "open"

    def fingerprint(self) -> tuple:
        return (self.layer, self.sharing_class, self.fields,
                tuple(sorted(self.masks.items())), self.regions, self.grant_id)


def decide(caller: Caller, layer: dict[str, Any]) -> Access | None:
    """Apply the table above to one registry row (``layer`` has name, sharing_class,
    owner_code, sensitive_fields). Grants for conditional layers come with the
    grants module; without one a conditional layer yields no data."""
    cls = layer["sharing_class"]
    masks = dict(layer.get("sensitive_fields") or {})
    if caller.is_department and caller.dept_code == layer.get("owner_code"):
        return Access(layer["name"], cls)  # the owner sees everything, unmasked
    if cls == "open":
        return Access(layer["name"], cls, masks=masks)
    if cls == "unconditional" and caller.is_department:
        return Access(layer["name"], cls, masks=masks)
    return None


def visible_layers(conn, caller: Caller) -> list[tuple[dict[str, Any], Access]]:
    """Every published layer whose data this caller may read, with its access."""
    rows = conn.execute(
        "SELECT l.name, l.title, l.description, l.theme, l.sharing_class, l.kind, "
        "l.sensitive_fields, l.field_labels, l.key_field, l.geometry_type, "
        "l.update_cycle, d.code AS owner_code, d.name AS owner_name, v.table_name, "
        "l.current_version FROM layer l JOIN department d ON d.id = l.owner_dept_id "
        "JOIN layer_version v ON v.layer_id = l.id AND v.version = l.current_version "
        "ORDER BY l.name").fetchall()
    out = []
    for row in rows:
        access = decide(caller, row)
        if access is not None:
            out.append((row, access))
    return out
