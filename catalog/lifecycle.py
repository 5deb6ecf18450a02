"""The lifecycle of a catalog entry, and who may move it.

``draft`` → submit → ``submitted`` → review (approve | return with reasons; return sends
it back to ``draft``) → publish (approved only) → ``published`` → retire → ``retired``.
Every write records who and when in ``catalog_history``. Who may do what is the
policy's answer (``layers.policy.may_edit`` — the owner or the bureau —,
``may_review`` — the bureau —, ``entry_listed``); this module applies it.
"""

from __future__ import annotations

from typing import Any

from catalog import vocab
from catalog.content import CatalogError, Conflict, Forbidden, NotFound, Problem, content_of
from catalog.entries import _lock, actor_name, get_entry, record_history, save
from layers import localday as clock
from layers import policy
from layers.policy import Caller


def visible(caller: Caller, entry: dict[str, Any]) -> bool:
    """May the caller see this entry? The policy's rule for one entry (the lists use the
    same rule as SQL: ``catalog.entries.entry_filter``)."""
    return policy.entry_listed(caller, status=entry["status"],
                               owner_code=entry["provider_code"],
                               sharing_class=entry["sharing_class"],
                               name=entry.get("layer_name") or entry["code"])


def entry_for(conn, entry_id: int, caller: Caller) -> dict[str, Any]:
    entry = get_entry(conn, entry_id)
    if entry is None or not visible(caller, entry):
        raise NotFound(f"信息资源 {entry_id} 不存在 / no catalog entry {entry_id}")
    return entry


def create(conn, content: dict[str, Any], caller: Caller) -> int:
    """A department drafts an entry of its own; the bureau may draft for anyone."""
    owner = content.get("provider_code")
    if owner is None and caller.is_department:
        owner = caller.dept_code  # a department catalogues its own resources
    if not policy.may_edit(caller, owner):
        if caller.data_dept is None:
            raise Forbidden("只有部门或统筹局可以编目 / only departments and the bureau "
                            "may catalogue")
        raise Forbidden("部门只能为本部门编目 / a department catalogues its own "
                        "resources only")
    entry_id, _ = save(conn, {**content, "provider_code": owner}, caller, status="draft",
                       action="create")
    return entry_id


def edit(conn, entry_id: int, content: dict[str, Any], caller: Caller) -> str:
    """Edit a draft (the owner or the bureau); the bureau may also correct a submitted
    or published entry. Unchanged content records nothing."""
    entry = entry_for(conn, entry_id, caller)
    if not policy.may_edit(caller, entry["provider_code"]):
        raise Forbidden("只能修改本部门的信息资源 / you may only edit your own entries")
    bureau = policy.may_review(caller)
    if entry["status"] == "retired" or (entry["status"] != "draft" and not bureau):
        raise Conflict(f"「{vocab.STATUSES[entry['status']]}」状态的信息资源不能由部门修改，"
                       "请联系统筹局退回 / only drafts can be edited by the department")
    merged = {**content_of(entry), **content}
    if not bureau:  # only the bureau moves an entry to another provider
        merged["provider_code"] = entry["provider_code"]
    if "code" not in content:
        merged["code"] = entry["code"] if merged.get("class_code") == entry["class_code"] and \
            merged.get("item_code") == entry["item_code"] and \
            merged.get("category_code") == entry["category_code"] and \
            merged.get("subcategory_code") == entry["subcategory_code"] else None
    _, outcome = save(conn, merged, caller, entry_id=entry_id, action="edit")
    return outcome


TRANSITIONS = {  # action → (from statuses, to status, who: the policy function asked)
    "submit": (("draft",), "submitted", "owner_or_bureau"),
    "approve": (("submitted",), "submitted", "bureau"),
    "return": (("submitted",), "draft", "bureau"),
    "publish": (("submitted",), "published", "bureau"),
    "retire": (("published", "draft", "submitted"), "retired", "owner_or_bureau"),
}


def transition(conn, entry_id: int, action: str, caller: Caller,
               comment: str | None = None) -> dict[str, Any]:
    if action not in TRANSITIONS:
        raise CatalogError(f"未知操作 {action!r} / unknown action {action!r}")
    sources, target, who = TRANSITIONS[action]
    with conn.transaction():
        _lock(conn, f"entry:{entry_id}")
        entry = entry_for(conn, entry_id, caller)
        allowed = (policy.may_review(caller) if who == "bureau" else
                   policy.may_edit(caller, entry["provider_code"]))
        if not allowed:
            raise Forbidden("无权执行该操作：审核与发布由市网信统筹局负责 / not allowed: "
                            "review and publication are the bureau's" if who == "bureau" else
                            "只能操作本部门的信息资源 / only the owner department may do this")
        if entry["status"] not in sources:
            raise Conflict(f"「{vocab.STATUSES[entry['status']]}」状态不能{_ACTION_ZH[action]} / "
                           f"cannot {action} an entry that is {entry['status']}")
        sets = {"status": target}
        if action == "return":
            if not (comment or "").strip():
                raise CatalogError("退回须说明理由 / a return needs its reasons",
                                   [Problem("comment", "退回须说明理由", "reasons required")])
            sets.update(review_state="returned", review_comment=comment,
                        reviewed_by=actor_name(caller))
        elif action == "approve":
            sets.update(review_state="approved", review_comment=comment,
                        reviewed_by=actor_name(caller))
        elif action == "submit":
            sets.update(review_state=None, review_comment=None, reviewed_by=None)
        elif action == "publish":
            if entry.get("review_state") != "approved":
                raise Conflict("须先审核通过才能发布 / approve the entry before publishing it")
            if entry.get("publish_date") is None:
                sets["publish_date"] = clock.today()
        assign = ", ".join(f"{k} = %s" for k in sets)
        extra = ", reviewed_at = now()" if action in ("approve", "return") else ""
        conn.execute(f"UPDATE catalog_entry SET {assign}{extra}, updated_at = now(), "
                     "updated_by = %s WHERE id = %s",
                     [*sets.values(), actor_name(caller), entry_id])
        record_history(conn, entry_id, caller, action, entry["status"], target, comment)
    return get_entry(conn, entry_id)


_ACTION_ZH = {"submit": "报送", "approve": "审核通过", "return": "退回", "publish": "发布",
              "retire": "撤销"}
