"""The child side of the model check (engine/modelcheck.py): import the factory, build the model
on the CPU, feed it one batch, find its output layer and the layers pruning will touch. Runs in
its own process only; answers are JSON lines on stdout behind modelcheck.MARK (the user's code
prints to stderr), each problem as {"ok": false, "field", "message"} with a one-line message."""

from __future__ import annotations

import difflib
import importlib
import inspect
import json
import sys
import traceback
from typing import Any, TextIO

from tprm.engine.modelcheck import MARK
from tprm.engine.modelimport import not_found_message


class Problem(Exception):
    """What is wrong, and the recipe field to fix."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field, self.message = field, message


def child_main(req: dict) -> None:
    out: TextIO = sys.stdout
    sys.stdout = sys.stderr  # the user's prints never mix with the answer
    from tprm.science import models, prune  # noqa: F401 -- torch imported before the clock starts

    _say(out, {"stage": "ready"})
    try:
        answer = {"ok": True, **_inspect(req)}
    except Problem as p:
        answer = {"ok": False, "field": p.field, "message": " ".join(p.message.split())[:400]}
    _say(out, answer)


def _say(out: TextIO, payload: dict) -> None:
    out.write(MARK + json.dumps(payload) + "\n")
    out.flush()


def _imported_data(req: dict) -> None:
    """dataset.import: run the data factory once and check its result; its num_classes and
    input_shape are then what the model is built for."""
    from tprm.science.dataimport import imported_data
    from tprm.science.dataspec import DataSpec

    _import_factory(req["data_import"], "dataset", req["roots"])
    try:
        *_, num_classes, shape = imported_data(DataSpec(import_=req["data_import"]))
    except ValueError as exc:
        raise Problem("dataset.import", f"{exc}, allowed: a factory returning (train, test, num_classes, "
                                        "input_shape)") from None
    req["num_classes"], req["input_shape"] = num_classes, list(shape)
    if not req["import"]:  # a built-in model: its settings against the data's shape (recipe.py does
        from tprm.science.modelspec import check_model_kwargs  # this when the shape is known up front)

        problem = check_model_kwargs(req["name"], req["kwargs"], tuple(shape))
        if problem is not None:
            key, message = problem
            raise Problem(f"model.kwargs.{key}" if key else "model.name", message)


def _inspect(req: dict) -> dict:
    import torch

    from tprm.science.models import build_model, seeded
    from tprm.science.prune import classifier_weight, layer_weights, prunable_parameters

    if req.get("data_import"):
        _imported_data(req)
    shape = tuple(req["input_shape"])
    with seeded(0):
        model = _factory_model(req) if req["import"] else build_model(
            req["name"], req["num_classes"], shape, **req["kwargs"])
    where = "model.import" if req["import"] else "model.name"
    if not isinstance(model, torch.nn.Module):
        raise Problem(where, f"the factory returned {type(model).__name__}, not a torch.nn.Module, "
                             "allowed: a factory returning the model")
    output = _forward(model, shape, req["num_classes"], where)
    if req["layers"] == "default" and req["keep_dense"] is None and output != classifier_weight(model):
        layer = output.rpartition(".")[0] if output else ""
        kind = type(model.get_submodule(layer)).__name__ if output else "no conv or linear layer"
        raise Problem(where, f"the model's last layer '{layer}' is a {kind}, not the nn.Linear classifier "
                             "that pruning keeps dense, allowed: end the model in nn.Linear, or list the "
                             f"weights to keep dense in pruning.keep_dense (e.g. ['{output}'])")
    try:
        pruned = prunable_parameters(model, req["layers"], req["keep_dense"])
    except ValueError as exc:
        field = "pruning.keep_dense" if "keep_dense" in str(exc) else "pruning.layers"
        raise Problem(field, f"{exc}, allowed: patterns matching the model's weights") from None
    if not pruned:
        raise Problem("pruning.keep_dense" if req["keep_dense"] else "pruning.layers",
                      "no weight is left to prune, allowed: patterns that leave some conv/linear weights")
    return {"pruned": pruned, "dense": [w for w in layer_weights(model) if w not in pruned],
            "output_layer": output, "parameters": sum(p.numel() for p in model.parameters())}


def _import_factory(spec: str, section: str, roots: list[str]) -> tuple[Any, str]:
    """(factory, its name) of ``<section>.import``; each failure as a Problem of that field."""
    module_name, _, attr = spec.partition(":")
    field = f"{section}.import"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise Problem(field, not_found_message(module_name, roots, f"{section}.path")) from None
        raise Problem(field, f"importing {module_name!r} failed: {_raised(exc)}, allowed: "
                             "a module whose imports are installed") from None
    except Exception as exc:  # noqa: BLE001 -- the user's module: any error is theirs
        raise Problem(field, f"importing {module_name!r} raised {_raised(exc)}, allowed: a "
                             "module that imports cleanly") from None
    factory: Any = module
    for part in attr.split("."):
        if not hasattr(factory, part):
            names = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
            close = difflib.get_close_matches(part, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise Problem(field, f"module {module_name!r} has no {attr!r}{hint}, allowed: one of "
                                 f"{', '.join(names[:12]) or '(no callables)'}")
        factory = getattr(factory, part)
    return factory, attr


def _factory_model(req: dict) -> Any:
    """The user's factory called as a run calls it; each failure as the field to fix."""
    factory, attr = _import_factory(req["import"], "model", req["roots"])
    _check_signature(factory, attr, req["kwargs"])
    try:
        return factory(num_classes=req["num_classes"], input_shape=tuple(req["input_shape"]), **req["kwargs"])
    except Exception as exc:  # noqa: BLE001
        args = ", ".join([f"num_classes={req['num_classes']}", f"input_shape={tuple(req['input_shape'])}",
                          *(f"{k}={v!r}" for k, v in req["kwargs"].items())])
        raise Problem("model.kwargs" if req["kwargs"] else "model.import",
                      f"{attr}({args}) raised {_raised(exc)}, allowed: settings the factory accepts") from None


def _check_signature(factory: Any, attr: str, kwargs: dict) -> None:
    """model.kwargs against the factory's parameters (a typo names the closest one)."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return  # no signature to read (a C function): the call itself will tell
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    names = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for needed in ("num_classes", "input_shape"):
        if needed not in names:
            raise Problem("model.import", f"{attr}() takes no {needed!r} argument, allowed: a factory "
                                          "called as factory(num_classes=..., input_shape=..., **kwargs)")
    settings = [n for n in names if n not in ("num_classes", "input_shape")]
    for key in kwargs:
        if key not in settings:
            close = difflib.get_close_matches(key, settings, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise Problem(f"model.kwargs.{key}", f"{attr}() has no parameter {key!r}{hint}, allowed: "
                                                 f"{', '.join(settings) or '(none)'}")
    missing = [n for n in settings if params[n].default is inspect.Parameter.empty and n not in kwargs]
    if missing:
        raise Problem("model.kwargs", f"{attr}() needs {', '.join(map(repr, missing))}, allowed: set it "
                                      "in model.kwargs")


def _forward(model: Any, shape: tuple, num_classes: int, where: str) -> str | None:
    """Feed one batch of two zero inputs; the weight of the last conv/linear layer that ran."""
    import torch

    from tprm.science.prune import layer_weights

    weights = set(layer_weights(model))
    order: list[str] = []
    hooks = [module.register_forward_hook(lambda *_a, _n=name: order.append(_n))
             for name, module in model.named_modules() if f"{name}.weight" in weights or
             (not name and "weight" in weights)]
    try:
        with torch.no_grad():
            out = model.eval()(torch.zeros(2, *shape))
    except Exception as exc:  # noqa: BLE001
        raise Problem(where, f"the model's forward pass on a batch of shape {(2, *shape)} raised "
                             f"{_raised(exc)}, allowed: a model for inputs of that shape") from None
    finally:
        for h in hooks:
            h.remove()
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise Problem(where, f"the model's output for a batch of 2 is {got}, allowed: logits of shape "
                             f"(2, {num_classes}) (one per class)")
    if not order:
        return None
    return f"{order[-1]}.weight" if order[-1] else "weight"


def _raised(exc: BaseException) -> str:
    """'Type: message (file.py line N)' at the innermost frame (or the syntax error's place)."""
    text = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}".rstrip(": ")
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{text} ({exc.filename.rpartition('/')[2]} line {exc.lineno})"
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        return f"{text} ({frames[-1].filename.rpartition('/')[2]} line {frames[-1].lineno})"
    return text
