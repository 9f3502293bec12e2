"""Editing a recipe in $EDITOR (E): saved only if it validates; a rejected edit is kept as a draft.

The draft is a file the user is told about (its path is on the screen), so an edit that took a
while is never lost: E opens the draft again instead of the saved recipe, and the draft is
removed once the recipe saves (or the edit is undone).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tprm.tui.screens.base import TaskScreen


def editor_command() -> list[str]:
    """The user's editor ($VISUAL, else $EDITOR, else vi) as an argument list."""
    return shlex.split(os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi")


class ExternalEdit:
    """The $EDITOR edits of one screen, and their drafts (recipe path -> draft file)."""

    def __init__(self, screen: TaskScreen) -> None:
        self.screen = screen
        self.drafts: dict[str, Path] = {}

    def edit(self, path: str, text: str) -> None:
        """Open `path`'s draft (if an earlier edit was rejected) or its `text` in the editor,
        with the app suspended; then save what the user wrote, if it validates."""
        draft = self.drafts.pop(path, None)
        if draft is None or not draft.exists():
            handle, name = tempfile.mkstemp(prefix=f"tprm-{Path(path).stem}-draft-", suffix=".yaml")
            with os.fdopen(handle, "w") as out:
                out.write(text)
            draft = Path(name)
        try:
            with self.screen.app.suspend():
                subprocess.run([*editor_command(), str(draft)], check=False)
            new_text = draft.read_text()
        except Exception as exc:
            draft.unlink(missing_ok=True)
            self.screen.show_problem(exc, "Cannot run the editor")
            return
        if new_text == text:  # nothing changed (or the edit was undone): nothing to keep
            draft.unlink(missing_ok=True)
            return
        self._save(path, draft, new_text)

    def _save(self, path: str, draft: Path, new_text: str) -> None:
        svc = self.screen.tprm.svc

        def save() -> Path:
            target = svc.recipes.save_path(path)  # a shipped recipe is saved as a copy
            svc.recipes.save(target, new_text)
            return target

        def done(target: Path) -> None:
            draft.unlink(missing_ok=True)
            self.screen.clear_problem()  # an earlier "not saved" is answered
            self.screen.app.notify(f"saved {target}")
            self.screen.reload()

        def rejected(exc: BaseException) -> None:
            self.drafts[path] = draft
            self.screen.show_problem(exc, "Not saved", hint=f"your edit is kept in {draft}: press E to reopen "
                                                           "it and fix it")

        self.screen.call_service(save, group="recipes-save", done=done, on_error=rejected)
