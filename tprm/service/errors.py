"""The service's error types and the ONE conversion of engine input errors into them.

Every facade method raises `TprmError` subclasses with one-line messages: `BadInput` (a recipe,
argument or store file is wrong: exit code 2) or `RunFailed` (exit 1).
"""

from __future__ import annotations

import functools

from tprm.engine.inputerrors import first_line, input_errors


class TprmError(Exception):
    """An error a user can act on; str() is one line."""

    exit_code = 1


class BadInput(TprmError):
    exit_code = 2


class RunFailed(TprmError):
    exit_code = 1


class RunCancelled(RunFailed):
    """A run (or a case study's run) stopped on request; finished jobs are kept."""


class DataNotFetched(BadInput):
    """A recipe's torchvision data set is not on disk (and planning never downloads)."""

    def __init__(self, message: str, dataset: str):
        super().__init__(message)
        self.dataset = dataset


def bad_input(exc: Exception) -> BadInput:
    """The service error for an engine/science input error (DataNotFetched keeps its data set)."""
    from tprm.engine.planner import DataNotFetchedError

    if isinstance(exc, DataNotFetchedError):
        return DataNotFetched(str(exc), exc.dataset)
    return BadInput(first_line(exc))


def converting_input_errors(cls):
    """Wrap every public method of a facade so engine input errors surface as BadInput."""
    def wrap(fn):
        @functools.wraps(fn)
        def call(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except TprmError:
                raise
            except input_errors() as exc:
                raise bad_input(exc) from None
        return call

    for name, fn in list(vars(cls).items()):
        if name.startswith("_") or isinstance(fn, type):
            continue
        if isinstance(fn, staticmethod):
            setattr(cls, name, staticmethod(wrap(fn.__func__)))
        elif callable(fn):
            setattr(cls, name, wrap(fn))
    return cls
