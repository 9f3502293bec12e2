"""What a well-formed store record is: one check per table, used by every reader and writer.

Readers skip a malformed record (with one warning naming it); writers refuse a file that holds one
(nothing is written); ``tprm store check`` lists them; ``tprm store repair`` drops them and
rebuilds what it can from the artifact metadata. Only the fields tprm relies on are checked;
extra fields are allowed.
"""
from __future__ import annotations

from typing import Any

from tprm.engine.artifacts import HASH_RE
from tprm.engine.storebase import JOB_STATES, RUN_STATES

TABLES = ("meta", "recipes", "runs", "jobs", "results")


def _job_state(v: Any) -> bool:
    return v in JOB_STATES


def _run_state(v: Any) -> bool:
    return v in RUN_STATES


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _opt_num(v: Any) -> bool:
    return v is None or _num(v)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _str(v: Any) -> bool:
    return isinstance(v, str) and v != ""


def _hash(v: Any) -> bool:
    return isinstance(v, str) and HASH_RE.fullmatch(v) is not None


def _opt_str(v: Any) -> bool:
    return v is None or isinstance(v, str)


def _owner(v: Any) -> bool:
    return v is None or (isinstance(v, dict) and _int(v.get("pid")) and isinstance(v.get("host"), str))


# table -> [(field, required, test, what a valid value is)]
_FIELDS: dict[str, list[tuple[str, bool, Any, str]]] = {
    "meta": [("schema_version", False, _int, "an integer")],
    "recipes": [("name", True, _str, "a non-empty string"), ("hash", True, _str, "a non-empty string"),
                ("yaml", False, _opt_str, "a string"), ("path", False, _opt_str, "a string or null"),
                ("added", False, _opt_num, "a number"), ("updated", False, _opt_num, "a number")],
    "runs": [("run_id", True, _str, "a non-empty string"), ("recipe_name", True, _str, "a string"),
             ("state", True, _run_state, "a run state (running, done, failed, cancelled)"),
             ("pid", False, lambda v: v is None or _int(v), "an integer"),
             ("host", False, _opt_str, "a string"), ("log", False, _opt_str, "a string or null"),
             ("started", False, _opt_num, "a number"), ("ended", False, _opt_num, "a number or null"),
             ("heartbeat", False, _opt_num, "a number"),
             ("cancel_requested", False, lambda v: isinstance(v, bool), "true or false")],
    "jobs": [("hash", True, _hash, "a job hash"), ("kind", True, _str, "a non-empty string"),
             ("state", True, _job_state, "a job state (queued, running, done, failed, ...)"),
             ("label", False, _opt_str, "a string"),
             ("deps", False, lambda v: isinstance(v, list) and all(_hash(d) for d in v),
              "a list of job hashes"),
             ("recipes", False, lambda v: isinstance(v, list) and all(isinstance(r, str) for r in v),
              "a list of recipe hashes"),
             ("attempts", False, lambda v: v is None or _int(v), "an integer"),
             ("owner", False, _owner, "null or {pid: int, host: str, run_id}"),
             ("lease_until", False, _opt_num, "a number or null"),
             ("error", False, _opt_str, "a string or null"),
             ("created", False, _opt_num, "a number"), ("started", False, _opt_num, "a number"),
             ("ended", False, _opt_num, "a number or null"),
             ("spec", False, lambda v: v is None or isinstance(v, dict), "an object"),
             ("provenance", False, lambda v: v is None or isinstance(v, dict), "an object or null"),
             ("artifacts", False, lambda v: v is None or (isinstance(v, dict) and all(
                 isinstance(f, dict) for f in v.values())), "an object of {size, sha256}")],
    "results": [("hash", True, _hash, "a job hash"),
                ("values", True, lambda v: isinstance(v, dict), "an object"),
                ("updated", False, _opt_num, "a number")],
}
_KEYS = {"recipes": "name", "runs": "run_id", "jobs": "hash", "results": "hash"}


def record_problem(table: str, rec: Any) -> str | None:
    """Why `rec` is not a well-formed record of `table` (one phrase naming the field), or None."""
    if not isinstance(rec, dict):
        return f"is a {type(rec).__name__}, not an object"
    for name, required, test, valid in _FIELDS.get(table, ()):
        if name not in rec:
            if required:
                return f"no {name} (needs {valid})"
            continue
        try:
            ok = test(rec[name])
        except Exception:  # noqa: BLE001 -- a test on a strange value is a failed test
            ok = False
        if not ok:
            return f"{name} {_short(rec[name])} is not {valid}"
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def table_problems(data: dict) -> list[dict]:
    """[{table, id, problem}] for every malformed record (and duplicate key) of the known tables."""
    out = []
    for table in TABLES:
        records = data.get(table)
        if records is None:
            continue
        if not isinstance(records, dict):
            out.append({"table": table, "id": None,
                        "problem": f"table is a {type(records).__name__}, not an object"})
            continue
        seen: dict[Any, str] = {}
        key = _KEYS.get(table)
        for doc_id, rec in records.items():
            problem = record_problem(table, rec)
            if problem is None and key is not None:
                k = rec[key]
                if k in seen:
                    problem = f"duplicate {key} {_short(k)} (also {table}[{seen[k]}])"
                else:
                    seen[k] = doc_id
            if problem is None and not str(doc_id).isdigit():
                problem = f"record id {doc_id!r} is not a number"
            if problem is not None:
                out.append({"table": table, "id": doc_id, "problem": problem})
    return out


def describe(problem: dict) -> str:
    """`jobs[3]: no kind (needs a non-empty string)`."""
    where = problem["table"] if problem["id"] is None else f"{problem['table']}[{problem['id']}]"
    return f"{where}: {problem['problem']}"


def clean(data: dict, problems: list[dict]) -> dict:
    """A copy of `data` without the malformed records (tables that are not objects become empty)."""
    bad: dict[str, set] = {}
    for p in problems:
        bad.setdefault(p["table"], set()).add(p["id"])
    out = {}
    for table, records in data.items():
        if table not in bad:
            out[table] = records
        elif None in bad[table]:
            out[table] = {}
        else:
            out[table] = {k: v for k, v in records.items() if k not in bad[table]}
    return out
