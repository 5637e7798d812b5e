"""What a reviewer is told changed between two revisions of a policy (diff report, playground)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from engine.backends.readout import Readout
from engine.policy.changes import policy_changes
from engine.policy.loader import load_policy
from tests.conftest import Editor
from tests.engine.decide.test_head import _install_head


def test_a_refitted_head_and_its_thresholds_are_named(
    policy_copy: Path, edit_policy: Editor, tmp_path: Path
) -> None:
    head = _install_head(policy_copy, edit_policy)
    prompts = policy_copy.parent.parent / "prompts"
    base_dir = tmp_path / "base" / "contact-center"
    shutil.copytree(policy_copy, base_dir)
    base = load_policy(base_dir, prompts)
    assert policy_changes(base, load_policy(policy_copy, prompts)) == []

    refit = replace(head, weights=np.zeros_like(head.weights), fitted_on="dev.csv as chat/email")
    (policy_copy / "head.json").write_text(refit.to_json(), encoding="utf-8")
    edit_policy("policy.yaml", lambda d: d["head"]["thresholds"].update(informational=0.55))
    lines = policy_changes(base, load_policy(policy_copy, prompts))
    assert "`head.thresholds.informational`: 0.5 → 0.55" in lines
    assert (
        "probe head `head.json` refitted (now fitted on `dev.csv as chat/email`, n = 10)" in lines
    )
    assert not [line for line in lines if line.startswith("probe head reads")]

    wider = replace(refit, readout=Readout.parse(["mean:9", "last:16"]))
    (policy_copy / "head.json").write_text(wider.to_json(), encoding="utf-8")
    lines = policy_changes(base, load_policy(policy_copy, prompts))
    assert "probe head reads mean:9, last:16 (was last:final)" in lines

    edit_policy("policy.yaml", lambda d: d.pop("head"))
    assert "probe head removed" in policy_changes(base, load_policy(policy_copy, prompts))
