"""The access tests' two-tenant world (auth on, keys per role), for the workbench's tests too."""

from tests.service.access.conftest import world

__all__ = ["world"]
