"""The catalog's store: one import for the content rules, the SQL and the lifecycle.

The code lives in three modules; this one keeps their public names importable from
``catalog.store`` (the API, the CLI, the Excel import and the tests use them):

- :mod:`catalog.content`   an entry's content, :func:`validate`, :func:`normalise`, errors
- :mod:`catalog.entries`   reading, searching (:func:`list_entries`) and writing the tables
- :mod:`catalog.lifecycle` draft → submitted → published → retired, and who may move it

Lifecycle: ``draft`` → submit → ``submitted`` → review (approve | return with reasons;
return sends it back to ``draft``) → publish (approved only) → ``published`` → retire →
``retired``. Every write records who and when in ``catalog_history``. What a caller may
list, edit and review is answered by ``layers.policy`` (``catalog_filter``,
``entry_listed``, ``may_edit``, ``may_review``); the catalog only applies it.
"""

from __future__ import annotations

from catalog.content import (
    CONTENT_FIELDS,
    ENTRY_FIELDS,
    FIELD_LABELS,
    ITEM_FIELDS,
    REQUIRED,
    CatalogError,
    Conflict,
    Forbidden,
    NotFound,
    Problem,
    content_of,
    normalise,
    validate,
)
from catalog.entries import (
    FACETS,
    FILTERS,
    KIND_LABELS,
    actor_name,
    entry_filter,
    facet_counts,
    get_entry,
    history,
    list_entries,
    record_history,
    save,
)
from catalog.lifecycle import TRANSITIONS, create, edit, entry_for, transition, visible

__all__ = [
    "CONTENT_FIELDS", "ENTRY_FIELDS", "FACETS", "FIELD_LABELS", "FILTERS", "ITEM_FIELDS",
    "KIND_LABELS", "facet_counts",
    "REQUIRED", "TRANSITIONS", "CatalogError", "Conflict", "Forbidden",
    "NotFound", "Problem", "actor_name", "content_of", "create", "edit", "entry_filter",
    "entry_for", "get_entry", "history", "list_entries", "normalise", "record_history",
    "save", "transition", "validate", "visible",
]
