"""Tenants, principals, credentials, residency and fairness: who may read or label what.

``principal.py`` the roles and their grants, ``tenants.py`` the operations-owned tenant files,
``keys.py`` API keys (hashes only), ``oidc.py`` SSO bearer tokens, ``control.py`` the one place
that authorizes a request, ``guard.py`` the per-route declaration, ``residency.py`` one audit
store per region, ``fairness.py`` per-tenant rate and model share, ``cli.py`` ``switchboard keys``.
Modules are imported directly (no re-exports here: ``service.admission`` uses ``fairness``
without pulling in the rest).
"""
