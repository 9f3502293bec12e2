"""The one list of exception types that mean the user's input is at fault (a recipe, a data set,
a store file, a Ray backend setting): the service turns them into `BadInput` (exit 2) and the
detached-run entry point prints them as one line (exit 2)."""

from __future__ import annotations


def input_errors() -> tuple[type[Exception], ...]:
    """Recipe, store, artifact, data and backend errors (imported lazily: no torch, no ray)."""
    from tprm.engine.artifacts import ArtifactError
    from tprm.engine.datasets import DataMissingError
    from tprm.engine.executors.ray import BackendError
    from tprm.engine.planner import DataNotFetchedError
    from tprm.engine.recipe import RecipeError
    from tprm.engine.store import StoreError

    return (RecipeError, StoreError, ArtifactError, DataMissingError, DataNotFetchedError, BackendError)


def first_line(exc: BaseException) -> str:
    """An exception's message as one line (its type name when it has none)."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
