"""The workbench's navigation: every page a person opens from the menu, and who may open it.

``render`` shows a caller the links whose permission their role grants; the home page lists the
same links with their descriptions. A page module adds its entry here.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.access.principal import Permission


@dataclass(frozen=True)
class NavLink:
    path: str
    label: str
    permission: Permission
    description: str


NAV: tuple[NavLink, ...] = (
    NavLink(
        "/queues",
        "Review queues",
        Permission.LIST_REVIEWS,
        "Cases waiting for a person, soonest deadline first: claim one, confirm or change it.",
    ),
    NavLink(
        "/policies",
        "Policies",
        Permission.TRY_POLICIES,
        "The revision serving now, who activated it and when; its thresholds and rules; "
        "reload and rollback for admins.",
    ),
    NavLink(
        "/playground",
        "Playground",
        Permission.TRY_POLICIES,
        "Decide a message under the active policy and a candidate directory, side by side.",
    ),
    NavLink(
        "/live",
        "Live numbers",
        Permission.LIST_REVIEWS,
        "What is arriving, what is waiting in your queues, how the model is doing: for a team "
        "lead.",
    ),
    NavLink(
        "/shadow",
        "Shadow runs",
        Permission.OPERATE,
        "Run a candidate policy beside the active one on live traffic, read what it would change, "
        "promote it.",
    ),
    NavLink(
        "/shadow/tenant",
        "Shadow report",
        Permission.READ_DECISIONS,
        "What a candidate policy in shadow would decide for your tenant's messages, with examples.",
    ),
    NavLink(
        "/explorer",
        "Decision explorer",
        Permission.READ_DECISIONS,
        "Search recorded decisions by time, category, review state, policy revision, rule and "
        "degradation; read one as words; auditors export the result as CSV.",
    ),
)
