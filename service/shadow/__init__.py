"""Shadow runs: a candidate policy revision decides live traffic beside the active one, and acts
on nothing.

``runner`` decides off the request path and stores ``shadow_decisions``; ``compare`` says whether
the two decisions agree and whether one crossed the safety line; ``report`` reads a run back per
tenant; ``operations`` is what the admin routes and the workbench pages call.
"""

from service.shadow.runner import Shadow, ShadowRun

__all__ = ["Shadow", "ShadowRun"]
