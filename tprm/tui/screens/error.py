"""Error modal: shows a service error's one-line message instead of crashing the app."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class ErrorModal(ModalScreen[None]):
    """A one-line error with a title; Enter/Escape closes it, q closes it and quits.

    (A modal hides the app's own keys, so q is bound here: no dialog keeps a user from quitting.)
    """

    BINDINGS = [Binding("escape,enter", "dismiss_modal", "Close"), Binding("q", "quit_app", "Quit")]

    def __init__(self, message: str, title: str = "Error") -> None:
        super().__init__(classes="modal")
        self.message = message
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog error"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.message, id="error-message", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("OK", variant="error", id="ok")

    def on_mount(self) -> None:
        self.query_one("#ok", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_dismiss_modal(self) -> None:
        self.dismiss(None)

    async def action_quit_app(self) -> None:
        self.dismiss(None)
        await self.app.run_action("quit")
