"""What the store's parts (store*.py) and the bundle format (bundle.py) share: the errors, the
schema and state constants, and small helpers for JSON values and TinyDB tables. Imports nothing
of either."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from tprm.engine.artifacts import HASH_RE

SCHEMA_VERSION = 2
JOB_STATES = ("queued", "running", "done", "failed", "diverged", "cancelled")
RUN_STATES = ("running", "done", "failed", "cancelled")
ERROR_MAX_CHARS = 300


class StoreError(Exception):
    """A store problem a user can act on; str() is one line."""


class StoreWarning(UserWarning):
    """Something a reader skipped or fixed on the way (a malformed record, a re-queued job)."""


def pid_alive(pid: Any) -> bool:
    """True when process `pid` exists on this host (or we cannot tell)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but belongs to someone else, or we cannot tell: assume alive
    return True


def json_default(value: Any) -> Any:
    """Store paths as strings and numpy / torch scalars as plain numbers; anything else is an error."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", 0) == 0:
        return item()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def jsonable(value: Any, what: str) -> Any:
    """`value` as plain JSON data (numpy/torch scalars converted); StoreError naming `what` otherwise."""
    try:
        return json.loads(json.dumps(value, default=json_default))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what}: {exc}; only JSON values (dict, list, str, number, bool, null) "
                         "can be stored") from None


def one_line(text: Any) -> str | None:
    if text is None:
        return None
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return (lines[0] if lines else "")[:ERROR_MAX_CHARS]


def check_hash(value: Any, what: str) -> str:
    if not isinstance(value, str) or not HASH_RE.fullmatch(value):
        raise StoreError(f"{what}: {value!r} is not a job hash (1-128 characters from [0-9A-Za-z_-])")
    return value


def by_hash(table) -> dict[str, Any]:
    """{hash: Document} for a TinyDB table (Documents carry doc_id)."""
    return {doc["hash"]: doc for doc in table.all()}


def apply_changes(table, docs: Mapping[str, Any], changes: Mapping[str, dict]) -> None:
    """Set new fields on many documents (keyed by hash) with ONE pass over the table.

    `docs` is the {hash: Document} map of the same transaction (it supplies the doc ids).
    """
    if changes:
        table.update(lambda raw: raw.update(changes[raw["hash"]]),
                     doc_ids=[docs[h].doc_id for h in changes])
