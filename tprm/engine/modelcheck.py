"""A recipe's model checked before anything runs: the factory imported and the model built once
on the CPU, fed one batch of the data set's shape, its output layer and pruned layers found.

It runs in a child process with a time limit, so a hanging import cannot hang the CLI or the TUI
and a crashing one cannot take them down; every problem (module or factory typo, a kwarg the
factory does not take, a factory that raises, a model that ends in a convolution, a keep_dense
pattern that matches nothing) comes back as ONE line naming the recipe's file, line and field.
The child side (`child_main`, in modelprobe.py) is the only part that imports torch or user code.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from typing import Any

from tprm.engine.modelimport import code_identity, import_roots, module_sources, recipe_error, sources_identity
from tprm.engine.recipe import RecipeError

MARK = "@tprm-model-check "   # the child's answer lines start with this (user prints go to stderr)
STARTUP_S = 300.0             # the child's own start (python + torch) on a loaded machine
BUILD_S = 60.0                # importing the user's module and building the model
BUILD_S_ENV = "TPRM_MODEL_CHECK_S"  # overrides BUILD_S (a slow factory, or tests)
_BOOT = ("import json, sys; req = json.loads(sys.stdin.readline()); sys.path[:0] = req['sys_path']; "
         "from tprm.engine.modelprobe import child_main; child_main(req)")
_CHECKED: dict[tuple, dict] = {}


def needs_check(recipe) -> bool:
    """True when only building the model can tell whether the recipe works: an imported model, or
    layers named by pattern (built-in models' settings are checked by the schema itself)."""
    p = recipe.pruning
    return (recipe.model.import_ is not None or recipe.dataset.import_ is not None
            or p.keep_dense is not None or p.layers != "default")


def check_model(recipe) -> dict:
    """{"pruned", "dense", "output_layer", "parameters"} of the recipe's model (built once per
    recipe and code version in this process); RecipeError (one line) for any problem."""
    try:
        data_code = None if recipe.dataset.import_ is None else \
            sources_identity(module_sources(recipe, "dataset"))  # an edited data factory is checked again
        key: tuple | None = (recipe.hash, str(recipe.origin[1]), code_identity(recipe), data_code)
    except RecipeError:
        key = None  # the child says what is wrong with the module
    if key is None or key not in _CHECKED:
        answer = _run_child(recipe)
        if key is None:
            return answer
        _CHECKED[key] = answer
    return dict(_CHECKED[key])


def build_limit() -> float:
    try:
        return float(os.environ.get(BUILD_S_ENV, BUILD_S))
    except ValueError:
        return BUILD_S


def _request(recipe) -> dict[str, Any]:
    m, p = recipe.model, recipe.pruning
    data = recipe.data_spec()
    imported = data.import_ is not None  # the child learns the facts from the data factory
    return {"import": m.import_, "name": m.name, "kwargs": dict(m.kwargs), "data_import": data.import_,
            "roots": list(import_roots(recipe)),
            "sys_path": list(import_roots(recipe)) + [x for x in sys.path if x],
            "num_classes": None if imported else data.num_classes,
            "input_shape": None if imported else list(data.input_shape),
            "layers": p.layers if isinstance(p.layers, str) else list(p.layers),
            "keep_dense": None if p.keep_dense is None else list(p.keep_dense)}


def _run_child(recipe) -> dict:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")  # built on the CPU, whatever the machine has
    proc = subprocess.Popen([sys.executable, "-c", _BOOT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, start_new_session=True, env=env)
    answers: queue.Queue = queue.Queue()
    threading.Thread(target=_read_answers, args=(proc, answers), daemon=True).start()
    try:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(_request(recipe)) + "\n")
        proc.stdin.close()
        ready = _next(answers, STARTUP_S)
        if ready is None or ready.get("stage") != "ready":
            raise recipe_error(recipe, "model", "the model check could not start (python -c ... "
                               f"exited {proc.poll()}), allowed: a working torch installation")
        limit = build_limit()
        answer = _next(answers, limit)
        if answer is None:
            what = "did not finish" if proc.poll() is None else f"died (exit {proc.poll()})"
            raise recipe_error(recipe, "model.import" if recipe.model.import_ else "model",
                               f"importing and building the model {what} within {limit:g} s, allowed: "
                               f"a factory that builds the model in time ({BUILD_S_ENV} sets the limit)")
    except BrokenPipeError:
        raise recipe_error(recipe, "model", "the model check process ended at once, allowed: a "
                                            "working python and torch installation") from None
    finally:
        _stop(proc)
    if not answer.get("ok"):
        raise recipe_error(recipe, answer["field"], answer["message"])
    return {k: v for k, v in answer.items() if k != "ok"}


def _read_answers(proc: subprocess.Popen, answers: queue.Queue) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(MARK):
            try:
                answers.put(json.loads(line[len(MARK):]))
            except ValueError:
                continue
    answers.put(None)  # the child ended


def _next(answers: queue.Queue, timeout: float) -> dict | None:
    try:
        return answers.get(timeout=timeout)
    except queue.Empty:
        return None


def _stop(proc: subprocess.Popen) -> None:
    """End the child and anything it started (its own session)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
    proc.wait()
