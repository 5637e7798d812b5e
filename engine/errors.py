"""One error hierarchy for the engine: every error names what went wrong and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass


class SwitchboardError(Exception):
    """Base of every error the engine raises on purpose."""


@dataclass(frozen=True)
class PolicyProblem:
    """One thing wrong with a policy, located in a file and a path inside it."""

    file: str
    location: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.location}" if self.location else self.file
        return f"{where}: {self.message}"


class PolicyError(SwitchboardError):
    """A policy could not be loaded; carries every problem found, not just the first."""

    def __init__(self, policy_dir: str, problems: list[PolicyProblem]) -> None:
        self.policy_dir = policy_dir
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"policy at {policy_dir} has {len(problems)} problem(s); fix them and reload:\n{lines}"
        )


class PolicyNotFoundError(SwitchboardError):
    """A caller asked for a policy id that is not loaded."""

    def __init__(self, policy_id: str, known: list[str]) -> None:
        self.policy_id = policy_id
        self.known = known
        super().__init__(
            f"unknown policy {policy_id!r}; loaded policies: {', '.join(known) or 'none'}"
        )


class PromptRenderError(SwitchboardError):
    """The policy's template could not be rendered for a message."""


class BackendConfigError(SwitchboardError):
    """A backend could not be built (missing package, bad model file, unknown name)."""


class ModelFileError(BackendConfigError):
    """The embedded model file is missing or does not match its pinned SHA-256."""


class RulesEngineError(SwitchboardError):
    """durable-rules failed while compiling or evaluating; the engine fails closed on it.

    ``path`` locates a compile-time problem in the policy (e.g. ``("rules", 3, "when")``).
    """

    def __init__(self, message: str, *, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.path = path


class MessageRejectedError(SwitchboardError):
    """The message itself is unacceptable (empty, too long, not text)."""


class RedactionConfigError(SwitchboardError):
    """The redaction section names an entity no offline recognizer finds, or has a bad regex.

    ``path`` locates it in the policy (e.g. ``("redaction", "entities", 2)``).
    """

    def __init__(self, message: str, *, path: tuple[str | int, ...] = ("redaction",)) -> None:
        super().__init__(message)
        self.path = path


class RedactionFailedError(SwitchboardError):
    """The redactor could not process the message; the message must not leave the process."""


class EvalDataError(SwitchboardError):
    """A labelled CSV or a predictions file cannot be read (missing column, bad label...)."""


class ReplayError(SwitchboardError):
    """Replay inputs could not be read: a git revision, a CSV file or an audit database."""


class AuditStoreError(SwitchboardError):
    """The audit store could not be opened or read (bad URL, unreachable database)."""


class DeliveryError(SwitchboardError):
    """A committed hand-off could not be delivered (yet); the dispatcher retries it."""


class BrokerUnavailableError(DeliveryError):
    """The message broker cannot be reached or dropped the connection: nothing is wrong with the
    hand-off itself, so it stays pending and the dispatcher backs off until the broker is back."""


class HandOffRejectedError(DeliveryError):
    """The broker refused this one hand-off (negative confirm, or no queue bound to its routing
    key). Retried with backoff; after the last attempt it becomes a dead letter with this reason
    (``GET /admin/outbox``), replayable once the cause is fixed."""
