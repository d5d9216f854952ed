"""The promote confirmation: the gate's dry-run answer, every figure it compared and the one to beat.

Shown before anything changes, so the user promotes knowing what the adapter beat (or did not).
Dismisses with "promote", "force" (ask again with the metric waived) or None.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from ragweld_tui.format import figure_lines
from ragweld_tui.screens.base import AppModalScreen
from ragweld_tui.widgets.key_bar import KeyBar
from store import RunRecord
from trainers.promotion import GateDecision


def gate_text(run: RunRecord, decision: GateDecision, force: bool) -> str:
    """The dialog body: the question, the figures (reference marked), the gate's answer and reasons."""
    verb = "Force-promote (waiving the metric gate)" if force else "Promote"
    lines = [f"{verb} {run.name} ({run.id}) to the active {run.kind} adapter?", ""]
    metric = decision.metric or run.primary_metric or "metric"
    if decision.figures:
        lines.append(f"{metric} ({run.goal}) on the run's dev candidates:")
        lines.extend(figure_lines(decision.figures, decision.reference))
    else:
        lines.append(f"(no {metric} figures to compare)")
    lines.append("")
    if decision.promote:
        lines.append("The gate says YES (forced: the metric is waived)." if decision.forced else "The gate says YES.")
    else:
        even = ", even forced: forcing waives only the metric comparison." if force else "."
        lines.append("The gate says NO" + even)
    lines.extend(f"  - {reason}" for reason in decision.reasons)
    if not decision.promote and not force:
        lines.append("")
        lines.append("P forces it: the metric is waived, compatibility is not.")
    return "\n".join(lines)


class PromoteScreen(AppModalScreen[str | None]):
    """`y` promotes (a refused gate records the refusal), `P` asks again forced, `n`/escape cancel."""

    BINDINGS = [
        Binding("y", "answer('promote')", "Promote"),
        Binding("P", "answer('force')", "Force"),
        Binding("n", "answer('')", "No"),
        Binding("escape", "answer('')", "Cancel"),
    ]

    def __init__(self, run: RunRecord, decision: GateDecision, force: bool) -> None:
        super().__init__()
        self.run = run
        self.decision = decision
        self.force = force

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static("Promote", classes="dialog-title")
            with VerticalScroll(id="gate-body"):
                yield Static(gate_text(self.run, self.decision, self.force), id="question", markup=False)
            yield Static(self._hint(), classes="dialog-hint")
        yield KeyBar()

    def _hint(self) -> str:
        yes = "promote" if self.decision.promote else "try anyway (refused, and recorded)"
        force = "   [b]P[/b] force" if self._can_force() else ""
        return f"[b]y[/b] {yes}{force}   [b]n[/b] no"

    def _can_force(self) -> bool:
        return not self.force and not self.decision.promote

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """`P` only where forcing could change the answer."""
        if action == "answer" and parameters == ("force",):
            return self._can_force()
        return True

    def action_answer(self, choice: str) -> None:
        """Close the dialog with the choice (None for no)."""
        self.dismiss(choice or None)
