"""Built-in recipe editor: a TextArea whose text is saved only when it validates."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static, TextArea

from tprm.tui.screens.confirm import ConfirmModal


class EditorScreen(Screen[bool]):
    """Edits one recipe file; ctrl+s validates and saves (dismisses True), escape closes."""

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("escape", "close", "Close", priority=True),
    ]

    def __init__(self, path: str, text: str, save_path: str | None = None) -> None:
        super().__init__()
        self.source = path
        self.path, self.original = save_path or path, text

    def compose(self) -> ComposeResult:
        title = (f"editing {self.path}" if self.path == self.source else
                 f"shipped recipe {self.source} is not changed: ctrl+s saves a copy to {self.path}")
        yield Static(title, id="editor-title", markup=False)
        editor = TextArea.code_editor(self.original, id="editor", soft_wrap=False)
        editor.cursor_blink = False
        yield editor
        yield Static("ctrl+s: validate and save (a recipe that does not validate is not saved)   "
                     "escape: close", id="editor-status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#editor", TextArea).focus()

    @property
    def text(self) -> str:
        return self.query_one("#editor", TextArea).text

    def action_save(self) -> None:
        text = self.text
        svc = self.app.svc  # type: ignore[attr-defined]

        def saved(_recipe: object) -> None:
            self.original = text
            self.app.notify(f"saved {self.path}", title="Recipe saved")
            self.dismiss(True)

        def rejected(exc: BaseException) -> None:
            self.query_one("#editor-status", Static).update("not saved: fix the error and press ctrl+s again")
            self.app.show_error(exc, title="Not saved: the recipe does not validate")  # type: ignore[attr-defined]

        self.app.call_service(svc.recipes.save, self.path, text, done=saved, on_error=rejected,  # type: ignore
                              group="editor-save")

    def action_close(self) -> None:
        if self.text == self.original:
            self.dismiss(False)
            return
        self.app.push_screen(ConfirmModal("Discard the unsaved changes?", title="Unsaved changes",
                                          yes="Discard", no="Keep editing"),
                             lambda discard: discard and self.dismiss(False))
