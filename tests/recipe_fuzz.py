"""Seeded mutation fuzzer over the shipped recipes: does every rejection read
`file:line: field: what is wrong, what is allowed` and name the field that was broken?

Each mutation changes one thing in one shipped recipe and remembers the field it touched:
delete a key, duplicate a key, rename a key (typo), give a wrong type, an out-of-range number, or
odd YAML at a key's line (tab, alias, anchor, python tag, unclosed bracket). The recipe is parsed
with `parse_recipe` and the outcome counted:

  traceback   any exception other than RecipeError
  form        a RecipeError not in the one-line `file:line: field: message` form
  wrong field a RecipeError naming a field unrelated to the mutated one (related: the same path,
              a parent or child of it, or the message cross-references it; `yaml` for odd YAML)

    python tests/recipe_fuzz.py [--n 500] [--seed 0] [--show 10]
"""

from __future__ import annotations

import argparse
import copy
import random
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tprm.engine.recipe import RecipeError, parse_recipe  # noqa: E402

FORM = re.compile(r"^.+:\d+: [\w.\[\]]+: .+$")
WRONG_VALUES = ["abc", "", [1, 2], {"a": 1}, True, None, 1.5, -3, "1e-4"]
OUT_OF_RANGE = [-1, 0, -0.5, 1e9, 10**30, 2.0, 1e-12, 10**400, float("inf"), float("nan")]
ODD_YAML = ["\t", " *alias", " &anchor", " !!python/object:os.system", " [", " {a: ", ": :", "\x07"]


@dataclass
class Outcome:
    total: int = 0
    valid: int = 0
    rejected: int = 0
    tracebacks: list[str] = field(default_factory=list)
    bad_form: list[str] = field(default_factory=list)
    wrong_field: list[str] = field(default_factory=list)


def _paths(tree, prefix=""):
    """(path, container, key) of every mapping entry, depth first (list items are not keys)."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            yield path, tree, key
            if path != "model.kwargs" or isinstance(value, dict):
                yield from _paths(value, path)


def _key_lines(text: str) -> list[tuple[int, str]]:
    """(line index, dotted path) of every `key:` line of a block-style dump."""
    stack: list[tuple[int, str]] = []
    out = []
    for i, line in enumerate(text.splitlines()):
        m = re.match(r"^( *)([A-Za-z_][\w]*):", line)
        if not m:
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([p for _, p in stack] + [m.group(2)])
        stack.append((indent, m.group(2)))
        out.append((i, path))
    return out


def mutate(doc: dict, rng: random.Random) -> tuple[str, str, str]:
    """One mutation of a recipe tree: (yaml text, mutated path, operation)."""
    tree = copy.deepcopy(doc)
    op = rng.choice(["delete", "duplicate", "rename", "type", "range", "range", "odd"])
    if op in ("delete", "rename", "type", "range"):
        path, container, key = rng.choice(list(_paths(tree)))
        if op == "delete":
            del container[key]
        elif op == "rename":
            new = key + rng.choice(["x", "_", "s"])
            container[new] = container.pop(key)
            path = path[:len(path) - len(key)] + new  # the unknown key (or its section) is the place
        elif op == "type":
            container[key] = rng.choice(WRONG_VALUES)
        else:
            value = rng.choice(OUT_OF_RANGE)
            if isinstance(container[key], list) and container[key]:
                container[key] = list(container[key])
                at = rng.randrange(len(container[key]))
                container[key][at] = value
                path = f"{path}[{at}]"
            else:
                container[key] = value
        return yaml.safe_dump(tree, sort_keys=False, default_flow_style=None, width=1000), path, op
    text = yaml.safe_dump(tree, sort_keys=False, default_flow_style=None, width=1000)
    lines = text.splitlines()
    i, path = rng.choice(_key_lines(text))
    if op == "duplicate":
        lines.insert(i + 1, lines[i])
    else:
        lines[i] = lines[i] + rng.choice(ODD_YAML)
    return "\n".join(lines) + "\n", path, op


def related(field_: str, path: str, message: str, op: str) -> bool:
    norm = lambda p: re.sub(r"\[\d+\]", "", p)  # noqa: E731
    f, p = norm(field_), norm(path)
    if op in ("odd", "duplicate") and field_ == "yaml":  # a duplicated first line of a wrapped value
        return True                                       # is no longer YAML: that is the error to name
    if op == "rename":  # the unknown key, or its section
        p = p.rpartition(".")[0] or p
        return f == norm(path) or f == p or f.startswith(p + ".") or (p == norm(path) and f == "recipe")
    if op == "delete" and f == "recipe" and "." not in p:
        return True
    if f == p or f.startswith(p + ".") or p.startswith(f + "."):
        return True
    leaf = p.rpartition(".")[2]
    return p in message or (op in ("delete", "type", "range") and f"{leaf}" in message)


def fuzz(n: int = 500, seed: int = 0) -> Outcome:
    rng = random.Random(seed)
    shipped = sorted((ROOT / "recipes").glob("*.yaml"))
    docs = [(p.name, yaml.safe_load(p.read_text())) for p in shipped]
    out = Outcome()
    for _ in range(n):
        name, doc = rng.choice(docs)
        text, path, op = mutate(doc, rng)
        out.total += 1
        source = f"mutant-{name}"
        try:
            parse_recipe(text, source)
        except RecipeError as exc:
            out.rejected += 1
            message = str(exc)
            if not FORM.match(message) or len(message.splitlines()) != 1:
                out.bad_form.append(f"[{op} {path}] {message}")
            elif not related(exc.field or "", path, message, op):
                out.wrong_field.append(f"[{op} {path}] {message}")
        except Exception as exc:  # noqa: BLE001 -- counting them is the point
            out.tracebacks.append(f"[{op} {path}] {type(exc).__name__}: {exc}"[:300])
        else:
            out.valid += 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", type=int, default=10)
    a = ap.parse_args()
    o = fuzz(a.n, a.seed)
    print(f"{o.total} mutations (seed {a.seed}): {o.valid} still valid, {o.rejected} rejected; "
          f"{len(o.tracebacks)} tracebacks, {len(o.bad_form)} not in the one-line form, "
          f"{len(o.wrong_field)} naming another field")
    for title, items in (("tracebacks", o.tracebacks), ("form", o.bad_form), ("wrong field", o.wrong_field)):
        for line in items[:a.show]:
            print(f"  {title}: {line}")


if __name__ == "__main__":
    main()
