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

Roles (``Caller.kind``):

* ``anonymous`` — open data only.
* ``department`` — a department's user or machine client: the table above.
* ``admin`` — the coordinating bureau (网信统筹局). It manages the registry and the grants
  (CLI), but for *data* it is exactly its own department: no layer, field or row it
  would not get as that department. Managing grants is not a grant.
* ``auditor`` — reads the audit log (``GET /audit``); for data it is anonymous. In the
  catalog it sees every entry in every state (it supervises; it edits nothing).
* ``system`` — the platform acting on its own behalf (registering a loaded layer in the
  catalog, the demo, scheduled work), named after what it does (``system:layer-sync``).
  For data it is anonymous; in the catalog it may write any department's entry, as the
  bureau may. It is never authenticated from a request: no key has this role.

The catalog (政务信息资源目录) is metadata, never data: :func:`catalog_filter` says which
entries a caller may list, :func:`may_edit` who may change one, :func:`may_review` who
reviews and publishes — the rule lives here, the catalog only applies it.

Grants (``layers.grants``) exist for conditional layers (and, to unmask named
sensitive fields, for unconditional ones). A live grant is one not
revoked whose ``[valid_from, valid_to)`` contains now. When a department holds several
live grants for one layer the newest (highest id) applies — grants are not merged, so
a department never gets the fields of one grant with the region of another.
Sensitive fields are masked for everyone but the owner, unless the applying grant names
the field explicitly (a grant with ``fields = NULL`` names none). An unconditional
resource takes only such *unmasking* grants: every field stays visible, the named
sensitive fields come in clear.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

CALLER_KINDS = ("anonymous", "department", "admin", "auditor", "system")


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

    @property
    def data_dept(self) -> str | None:
        """The department whose rights this caller has to *data* (admin = its bureau)."""
        if self.kind in ("department", "admin"):
            return self.dept_code
        return None

    @property
    def can_manage(self) -> bool:
        """Manages the registry and grants (the bureau)."""
        return self.kind == "admin"

    @property
    def can_read_audit(self) -> bool:
        return self.kind == "auditor"


ANONYMOUS = Caller()


def system(task: str) -> Caller:
    """The platform acting by itself for ``task`` (e.g. ``layer-sync``): see the roles."""
    return Caller(kind="system", name=f"system:{task}")


def owns(caller: Caller, owner_code: str | None) -> bool:
    """Is the caller (as a department, or the bureau as its own department) the owner?"""
    return caller.data_dept is not None and owner_code is not None and \
        caller.data_dept == owner_code


def may_edit(caller: Caller, owner_code: str | None) -> bool:
    """THE owner-or-bureau check: may the caller change a record owned by ``owner_code``
    (a catalog entry, a resource's metadata)? The owner department, the bureau (admin)
    and the platform itself (system) may; nobody else."""
    return caller.kind in ("admin", "system") or owns(caller, owner_code)


def may_review(caller: Caller) -> bool:
    """Review, return and publish catalog entries: the bureau's work (and the platform's,
    for entries it keeps in sync with the registry)."""
    return caller.kind in ("admin", "system")


def sees_every_entry(caller: Caller) -> bool:
    """The bureau, the platform and the auditor see catalog entries in every state."""
    return caller.kind in ("admin", "system", "auditor")


def may_file(caller: Caller) -> bool:
    """File a share request (共享申请): a department, or the bureau as its own department.
    Anonymous callers, auditors and the platform itself file nothing."""
    return caller.kind in ("department", "admin") and caller.dept_code is not None


def request_needed(layer: Mapping[str, Any], fields: Iterable[str] | None) -> bool:
    """Does a share request have something to give? Conditional and not-shared resources:
    yes; open: never; unconditional: only to unmask sensitive fields it names (an
    unmasking grant, :func:`decide`)."""
    if layer["sharing_class"] == "open":
        return False
    if layer["sharing_class"] == "unconditional":
        return bool(set(fields or ()) & set(layer.get("sensitive_fields") or {}))
    return True


def may_answer(caller: Caller, owner_code: str | None) -> bool:
    """Answer (approve, refuse, amend, renew, revoke) a request for a resource owned by
    ``owner_code``: the owner department, or the bureau acting for it (recorded with
    ``for_dept`` = the owner). The auditor changes nothing."""
    return caller.kind == "admin" or (caller.is_department and owns(caller, owner_code))


def is_applicant(caller: Caller, applicant_code: str | None) -> bool:
    """Withdraw or appeal a request: only the department that filed it."""
    return may_file(caller) and caller.dept_code == applicant_code


def sees_every_request(caller: Caller) -> bool:
    """The bureau (it supervises the legal clock), the auditor and the platform."""
    return caller.kind in ("admin", "auditor", "system")


@dataclass(frozen=True)
class SQLFilter:
    """A boolean SQL condition and its parameters, for ``WHERE``."""

    sql: str
    params: tuple[Any, ...] = ()


def catalog_filter(caller: Caller, *, status: str, owner: str, is_open: str,
                   sharing_type: str) -> SQLFilter:
    """Which catalog entries the caller may list, as SQL over the given column expressions.

    Published entries follow :func:`listed` — every department sees every published entry
    ("catalog entry only" in the table), anonymous callers only open ones (开放 and
    无条件). A department also sees its own entries in every state; the bureau, the
    platform and the auditor see all. :func:`entry_listed` is the same rule for one entry.
    """
    if sees_every_entry(caller):
        return SQLFilter("TRUE")
    if caller.data_dept is not None:
        return SQLFilter(f"({status} = 'published' OR {owner} = %s)", (caller.data_dept,))
    return SQLFilter(f"({status} = 'published' AND {is_open} AND "
                     f"{sharing_type} = 'unconditional')")


def entry_listed(caller: Caller, *, status: str, owner_code: str | None,
                 sharing_class: str, name: str = "") -> bool:
    """:func:`catalog_filter` for one entry (its sharing class as the registry spells it)."""
    if sees_every_entry(caller) or owns(caller, owner_code):
        return True
    if status != "published":
        return False
    return listed(caller, {"name": name, "sharing_class": sharing_class,
                           "owner_code": owner_code, "sensitive_fields": {}})


def request_filter(caller: Caller, *, applicant: str = "applicant.code",
                   owner: str = "owner.code") -> SQLFilter:
    """Which share requests the caller may read, as SQL over the applicant's and the
    resource owner's department-code columns: a department those it filed or that concern
    its resources; the bureau, the auditor and the platform all; anonymous none."""
    if sees_every_request(caller):
        return SQLFilter("TRUE")
    if caller.is_department:
        return SQLFilter(f"({applicant} = %s OR {owner} = %s)",
                         (caller.dept_code, caller.dept_code))
    return SQLFilter("FALSE")


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
    request_id: int | None = None  # the share request the grant came from (audited)
    record_log: bool = False  # each record handed out is logged too (layers.record_log)

    @property
    def audited(self) -> bool:
        """Every access to non-open data is audited."""
        return self.sharing_class != "open"

    def fingerprint(self) -> tuple:
        return (self.layer, self.sharing_class, self.fields,
                tuple(sorted(self.masks.items())), self.regions, self.grant_id)


def _grant_for(layer: Mapping[str, Any], grants: Iterable[Mapping[str, Any]]):
    """The live grant that applies to this layer (newest wins), or None.

    ``grants`` are rows of ``layers.grants.live_grants`` for the caller's department:
    already filtered to live ones; filtered here again by layer name.
    """
    best = None
    for g in grants:
        if g["layer"] == layer["name"] and (best is None or g["id"] > best["id"]):
            best = g
    return best


def decide(caller: Caller, layer: Mapping[str, Any],
           grants: Iterable[Mapping[str, Any]] = ()) -> Access | None:
    """Apply the table above to one registry row (``layer`` has name, sharing_class,
    owner_code, sensitive_fields) and the caller's live grants. THE rule: every other
    module asks here."""
    cls = layer["sharing_class"]
    make = partial(Access, layer["name"], cls, record_log=bool(layer.get("record_access_log")))
    sensitive = dict(layer.get("sensitive_fields") or {})
    dept = caller.data_dept
    if dept is not None and dept == layer.get("owner_code"):
        return make()  # the owner sees everything, unmasked
    if cls == "open":
        return make(masks=sensitive)
    if dept is None:
        return None  # anonymous and auditors: open data only
    if cls == "unconditional":
        # every field, sensitive ones masked — unless a live grant names them (an
        # unmasking grant, e.g. the ID numbers of a base library for 核验 by hand)
        grant = _grant_for(layer, grants)
        if grant is None or grant["fields"] is None:
            return make(masks=sensitive)
        masks = {f: k for f, k in sensitive.items() if f not in grant["fields"]}
        return make(masks=masks, grant_id=grant["id"], purpose=grant["purpose"],
                    request_id=grant.get("request_id"))
    if cls == "conditional":
        grant = _grant_for(layer, grants)
        if grant is None:
            return None  # catalog entry only
        # a grant listing its fields names each of them: they come unmasked; a grant for
        # every field (fields NULL) names none, so every sensitive field stays masked
        fields = tuple(grant["fields"]) if grant["fields"] is not None else None
        masks = sensitive if fields is None else {}
        regions = tuple(grant["regions"]) if grant["regions"] is not None else None
        return make(fields=fields, masks=masks, regions=regions, grant_id=grant["id"],
                    purpose=grant["purpose"], request_id=grant.get("request_id"))
    return None  # not_shared: catalog entry only (the legal basis says why)


def value_filter(caller: Caller, holder: str, owner_code: str | None) -> SQLFilter:
    """Does the caller *hold* a value it is shown beside another (a base library's
    verification ticket: the authority's value and a copy's)? As SQL over the column of
    the department that gave the value: that department holds it, and the owner of the
    library holds every value; anyone else gets it masked."""
    if owns(caller, owner_code):
        return SQLFilter("TRUE")
    if caller.data_dept is not None:
        return SQLFilter(f"{holder} = %s", (caller.data_dept,))
    return SQLFilter("FALSE")


def may_read_access_log(caller: Caller, owner_code: str | None) -> bool:
    """A person-level access log ("who looked at this record"): the owner of the
    library (the bureau) and the auditor — never the departments that looked."""
    return caller.kind == "auditor" or owns(caller, owner_code)


def may_verify(caller: Caller, layer: Mapping[str, Any]) -> bool:
    """核验 (match / no match per ID and name): whoever may read the library's data —
    for an unconditional library every department, never an anonymous caller."""
    return caller.data_dept is not None and decide(caller, layer) is not None


def listed(caller: Caller, layer: Mapping[str, Any]) -> bool:
    """May the caller see the layer's *catalog entry* (records, metadata)? Departments
    see every entry ("catalog entry only" in the table); anonymous callers and auditors
    only entries of layers whose data they may read (open). Data still needs ``decide``."""
    return caller.data_dept is not None or decide(caller, layer) is not None


# A *retired* resource (``jmgeo layer retire``) is in service nowhere: not listed, no
# data, no metadata — it answers exactly like a resource that never existed, for every
# caller, its owner and the bureau included — while its versions, grants, change log and
# audit rows are kept. Decided HERE, once: every way out reads resources through this
# query (visible_layers, access_row, lookup), so none can forget it.
IN_SERVICE_SQL = "l.retired_at IS NULL"


def in_service(row: Mapping[str, Any]) -> bool:
    """:data:`IN_SERVICE_SQL` for a registry row read elsewhere (``registry.list_layers``)."""
    return row.get("retired_at") is None

LAYER_QUERY = (
    "SELECT l.id, l.name, l.title, l.description, l.theme, l.sharing_class, l.kind, "
    "l.sensitive_fields, l.field_labels, l.key_field, l.geometry_type, l.record_access_log, "
    "l.update_cycle, d.code AS owner_code, d.name AS owner_name, v.table_name, "
    "l.current_version, v.extent FROM layer l JOIN department d ON d.id = l.owner_dept_id "
    "JOIN layer_version v ON v.layer_id = l.id AND v.version = l.current_version "
    f"WHERE {IN_SERVICE_SQL} ")


def _rows(cur) -> list[dict[str, Any]]:
    names = [c.name for c in cur.description]
    return [r if isinstance(r, dict) else dict(zip(names, r, strict=True))
            for r in cur.fetchall()]


def visible_layers(conn, caller: Caller) -> list[tuple[dict[str, Any], Access]]:
    """Every published layer whose data this caller may read, with its access."""
    from layers.grants import live_grants

    rows = _rows(conn.execute(LAYER_QUERY + "ORDER BY l.name"))
    grants = live_grants(conn, caller.data_dept) if caller.data_dept else []
    out = []
    for row in rows:
        access = decide(caller, row, grants)
        if access is not None:
            out.append((row, access))
    return out


def access_row(conn, layer_name: str) -> dict[str, Any] | None:
    """One published resource's registry row (what :func:`decide` and :func:`listed`
    read), or None when there is none."""
    rows = _rows(conn.execute(LAYER_QUERY + "AND l.name = %s", (layer_name,)))
    return rows[0] if rows else None


def _grants_column() -> str:
    """The caller's live grants on the row's resource as one JSON column (what
    :func:`decide` reads of a grant), so a lookup is one statement, not two."""
    from layers.grants import LIVE_SQL

    return (", (SELECT coalesce(jsonb_agg(jsonb_build_object('id', g.id, 'layer', l.name, "
            "'fields', g.fields, 'regions', g.regions, 'purpose', g.purpose, 'request_id', "
            "g.request_id) ORDER BY g.id), '[]'::jsonb) FROM layer_grant g JOIN department gd "
            "ON gd.id = g.dept_id WHERE g.layer_id = l.id AND gd.code = %s AND " + LIVE_SQL +
            ") AS __grants")


def lookup(conn, caller: Caller, layer_name: str
           ) -> tuple[dict[str, Any] | None, Access | None]:
    """One resource's registry row (None: no such resource) and the caller's access (None:
    no data) — one statement. The row of a refused resource is for evidence only — the
    refusal audit — never for an answer: callers answer as :func:`access_for` does."""
    dept = caller.data_dept
    if dept is None:
        row = access_row(conn, layer_name)
        return (None, None) if row is None else (row, decide(caller, row))
    select, rest = LAYER_QUERY.split(" FROM layer l ", 1)
    rows = _rows(conn.execute(select + _grants_column() + " FROM layer l " + rest +
                              "AND l.name = %s", (dept, layer_name)))
    if not rows:
        return None, None
    row = rows[0]
    grants = row.pop("__grants") or []
    return row, decide(caller, row, grants)


def access_for(conn, caller: Caller, layer_name: str) -> tuple[dict[str, Any], Access] | None:
    """One layer's registry row and the caller's access, or None when the caller may not
    have its data (answer exactly as for a layer that does not exist)."""
    row, access = lookup(conn, caller, layer_name)
    return None if access is None else (row, access)


def may_see_jobs(caller: Caller) -> bool:
    """The job queue (background and periodic jobs, their arguments and errors): the
    bureau runs the platform, the auditor supervises it; departments see their own
    results where each mode reports them, not the queue."""
    return caller.kind in ("admin", "auditor")


def may_see_deliveries(caller: Caller) -> bool:
    """The delivery count (what went to which department, how, how much): supervision's
    figures — the bureau and the auditor, as for the job queue."""
    return caller.kind in ("admin", "auditor")


def owns_job(caller: Caller, key_id: int | None, dept_code: str | None) -> bool:
    """A job — an export (and its file), a load of an upload — is its asker's alone: the
    same API key of the same department (another key of it is another asker). An anonymous
    export (open data only) is any anonymous caller's who holds its random id — as the
    open download itself would be — but not a keyed caller's."""
    return caller.key_id == key_id and caller.data_dept == dept_code


def may_subscribe(caller: Caller) -> bool:
    """Register a webhook subscription (系统对接): a department's system, or the bureau as
    its own department — pushes carry data *as that department* sees it. Anonymous
    callers, the auditor and the platform subscribe to nothing."""
    return may_file(caller)


def sees_every_subscription(caller: Caller) -> bool:
    """The bureau (it runs the pushes) and the auditor (it supervises them)."""
    return caller.kind in ("admin", "auditor")


def may_read_subscription(caller: Caller, dept_code: str | None) -> bool:
    """See a subscription and its delivery log: the department it belongs to, the bureau
    and the auditor (:func:`subscription_filter` is the same rule as SQL)."""
    return sees_every_subscription(caller) or (
        caller.is_department and caller.dept_code == dept_code)


def subscription_filter(caller: Caller, dept: str = "d.code") -> SQLFilter:
    """Which subscriptions the caller may list, over the owning department's code column."""
    if sees_every_subscription(caller):
        return SQLFilter("TRUE")
    if caller.is_department:
        return SQLFilter(f"{dept} = %s", (caller.dept_code,))
    return SQLFilter("FALSE")


def sees_every_receipt(caller: Caller) -> bool:
    """Front-end-processor receipts (回执) of every department: the bureau runs the
    exchange, the auditor supervises it, the platform writes them."""
    return caller.kind in ("admin", "auditor", "system")


def receipt_filter(caller: Caller, *, dept: str = "dept_code") -> SQLFilter:
    """Which drop-folder receipts the caller may read, as SQL over the receipt's
    department-code column: a department its own (the receipts of the files it handed
    in), the bureau, the auditor and the platform all, anonymous none."""
    if sees_every_receipt(caller):
        return SQLFilter("TRUE")
    if caller.is_department:
        return SQLFilter(f"{dept} = %s", (caller.dept_code,))
    return SQLFilter("FALSE")


def may_change_subscription(caller: Caller, dept_code: str | None) -> bool:
    """Remove a subscription or requeue its dead letters: its department or the bureau."""
    return caller.kind == "admin" or (caller.is_department and caller.dept_code == dept_code)


def may_manage_copies(caller: Caller) -> bool:
    """Register, list and sync front-end-processor copies (前置机 outbound): the bureau
    runs the exchange's machines; the data in a copy is still exactly what the grant's
    department may see (:func:`decide`), never the bureau's."""
    return caller.kind == "admin"


def supervision_scope(caller: Caller) -> tuple[bool, str | None]:
    """Supervision figures (监督考核, the 通报): may the caller see them, and of whom? The
    bureau and the auditor see the whole city (``(True, None)``); a department its own
    figures only (``(True, its code)``); anonymous callers and the platform nothing."""
    if caller.kind in ("admin", "auditor"):
        return True, None
    if caller.is_department:
        return True, caller.dept_code
    return False, None


def may_file_reports(caller: Caller) -> bool:
    """File and list the bureau's supervision reports (通报), change the update rules: the
    bureau (the platform's monthly job files as ``system``); the auditor reads them."""
    return caller.kind in ("admin", "system")


def may_read_reports(caller: Caller) -> bool:
    """Read the filed city-wide reports: the bureau and the auditor."""
    return caller.kind in ("admin", "auditor", "system")


def may_rate(caller: Caller, received: bool) -> bool:
    """Rate a delivery or raise a correction ticket (评议、纠错): a department (or the
    bureau as its own department) that received the resource — ``received`` says whether
    the delivery count shows it did. Nobody rates what it never got."""
    return may_file(caller) and received


def may_answer_correction(caller: Caller, owner_code: str | None) -> bool:
    """Answer a correction ticket (fixed in version N / not an error): the owner
    department only — the one that can fix its data (the bureau when it is the owner)."""
    return caller.kind in ("department", "admin") and owns(caller, owner_code)


def correction_key_filter(caller: Caller, *, raiser: str, owner: str) -> SQLFilter:
    """May the caller read a correction ticket's record key (for a person, an ID number)?
    As SQL over the raising and owning departments' code columns: those two hold the
    record; the bureau, the auditor and anyone else see that a record was named, not
    which (the report and its drill-down may travel as files)."""
    dept = caller.data_dept
    if dept is None:
        return SQLFilter("FALSE")
    return SQLFilter(f"({raiser} = %s OR {owner} = %s)", (dept, dept))
