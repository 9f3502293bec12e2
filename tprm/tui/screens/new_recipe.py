"""Modal that asks for a new recipe's name and the template it starts from."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Select, Static


class NewRecipeModal(ModalScreen[tuple[str, str] | None]):
    """Returns (name, template) or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, templates: list[str], default_template: str = "quickstart", folder: str = "recipes") -> None:
        super().__init__(classes="modal")
        self.folder = folder
        self.templates = templates or [default_template]
        self.default_template = default_template if default_template in self.templates else self.templates[0]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog"):
            yield Label("New recipe", classes="dialog-title")
            yield Static("Name: lower-case letters, digits, - and _ (e.g. my-sweep).", classes="dialog-hint")
            yield Input(placeholder="name", id="name")
            yield Static(self._where(""), id="new-where", classes="dialog-hint", markup=False)
            yield Select([(t, t) for t in self.templates], value=self.default_template, allow_blank=False,
                         id="template", prompt="template")
            yield Static("Enter in the name field: create   Escape: cancel", classes="dialog-keys")

    def on_mount(self) -> None:
        self.query_one("#name", Input).focus()

    def _where(self, name: str) -> str:
        return f"will be written to {self.folder.rstrip('/')}/{name or '<name>'}.yaml"

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#new-where", Static).update(self._where(event.value.strip()))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        name = event.value.strip()
        if name:
            self.dismiss((name, str(self.query_one("#template", Select).value)))

    def action_cancel(self) -> None:
        self.dismiss(None)
