"""The probe head without a model: its file, its arithmetic, and how the engine and check use it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from engine.backends.fake import FakeBackend, Scripted
from engine.backends.model_files import QWEN25_CODER_05B, QWEN25_CODER_15B
from engine.backends.readout import DEFAULT_READOUT, Readout
from engine.categories import CATEGORIES, Category, Channel
from engine.decide.engine import Engine
from engine.decide.head import HeadFileError, ProbeHead, head_mismatches
from engine.decide.prompts import PromptBuilder
from engine.decide.record import encode_record
from engine.decide.request import DecisionRequest
from engine.decide.rules import RulesCache
from engine.errors import PolicyError
from engine.policy.loader import load_policy
from tests.conftest import REPO, Editor, probe_head

DIM = 16
SAFETY = Category.SAFETY_COMPLIANCE
LABELS = {Category.INFORMATIONAL: 0.2, Category.SERVICE_ACTION: 0.7, SAFETY: 0.1}


def _head(dim: int = DIM, **changes: object) -> ProbeHead:
    return probe_head(dim, **changes)


def test_probabilities_are_the_tempered_softmax_of_the_standardised_state() -> None:
    head = _head()
    h = np.random.default_rng(1).normal(size=DIM).astype(np.float32)
    z = head.weights @ ((h - head.mean) / head.scale) + head.bias
    expected = np.exp(z / 1.5) / np.exp(z / 1.5).sum()
    p = head.probabilities(h, LABELS)
    assert list(p) == list(CATEGORIES)
    assert [p[c] for c in CATEGORIES] == pytest.approx(expected.tolist(), rel=1e-9)


def test_a_label_weight_adds_the_weighted_log_label_probabilities_before_the_temperature() -> None:
    head = _head(label_weight=2.0)
    h = np.random.default_rng(1).normal(size=DIM).astype(np.float32)
    z = head.weights @ ((h - head.mean) / head.scale) + head.bias
    z = z + 2.0 * np.log([LABELS[c] for c in CATEGORIES])
    expected = np.exp(z / 1.5) / np.exp(z / 1.5).sum()
    p = head.probabilities(h, LABELS)
    assert [p[c] for c in CATEGORIES] == pytest.approx(expected.tolist(), rel=1e-9)
    # Without the weight the label probabilities are not read at all.
    assert _head().probabilities(h, LABELS) == _head().probabilities(h, {})
    assert p != pytest.approx(_head().probabilities(h, LABELS))


def test_a_label_probability_of_zero_is_floored_not_a_veto() -> None:
    head = _head(label_weight=1.0, weights=np.zeros((3, DIM)), bias=np.array([0.0, 0.0, 20.0]))
    h = np.zeros(DIM, dtype=np.float32)
    p = head.probabilities(h, {**LABELS, Category.SAFETY_COMPLIANCE: 0.0})
    assert all(np.isfinite(list(p.values())))
    assert max(p, key=p.__getitem__) is Category.SAFETY_COMPLIANCE  # 20 - log(1e6) / 1 > 0


def test_a_fusing_head_refuses_a_verdict_without_every_label() -> None:
    with pytest.raises(HeadFileError, match="lacks"):
        _head(label_weight=1.0).probabilities(
            np.zeros(DIM, dtype=np.float32), {Category.INFORMATIONAL: 1.0}
        )


def test_file_round_trip_keeps_what_it_was_fitted_for() -> None:
    head = _head()
    again = ProbeHead.from_json(head.to_json())
    h = np.ones(DIM, dtype=np.float32)
    assert again.probabilities(h, LABELS) == pytest.approx(head.probabilities(h, LABELS), abs=1e-6)
    fusing = ProbeHead.from_json(_head(label_weight=1.25).to_json())
    assert fusing.label_weight == 1.25
    assert again.readout == DEFAULT_READOUT
    wide = _head(dim=2 * DIM, readout=Readout.parse(["mean:9", "last:16"]))
    assert ProbeHead.from_json(wide.to_json()).readout == wide.readout
    assert (again.model_digest, again.template_hash, again.prefix_hash, again.n) == (
        head.model_digest,
        "sha256:t",
        "sha256:p",
        10,
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="other"), "not a switchboard-probe-head/1"),
        (lambda d: d.pop("model_digest"), "malformed"),
        (lambda d: d.update(bias=[0.0, 1.0]), "do not fit together"),
        (
            lambda d: d.update(classes=["informational", "informational", "safety_compliance"]),
            "once each",
        ),
        (lambda d: d.update(temperature=0), "positive"),
        (lambda d: d.update(label_weight=-1.0), "label_weight"),
        (lambda d: d.update(label_weight="much"), "malformed"),
        (lambda d: d.update(readout=["mean:final"]), "readout: 'mean:final'"),
    ],
)
def test_a_broken_file_is_refused_with_a_reason(change: object, message: str) -> None:
    doc = json.loads(_head().to_json())
    change(doc)  # type: ignore[operator]
    with pytest.raises(HeadFileError, match=message):
        ProbeHead.from_json(json.dumps(doc))


def test_mismatches_name_the_model_the_template_and_the_prefix() -> None:
    head = _head()
    ok = head_mismatches(
        head,
        model_digest=head.model_digest,
        hidden_size=DIM,
        template_hash="sha256:t",
        prompt_prefix_hash="sha256:p",
    )
    assert ok == []
    bad = head_mismatches(
        head,
        model_digest="sha256:other",
        hidden_size=896,
        template_hash="sha256:t",
        prompt_prefix_hash="sha256:x",
    )
    assert len(bad) == 3
    assert "fitted for model" in bad[0]
    assert "fit-head" in bad[0]
    assert "896" in bad[1]
    assert "prompt prefix" in bad[2]


def test_mismatches_size_a_readout_and_name_a_layer_the_model_lacks() -> None:
    """A head reads one hidden state per read of its readout, of layers the model has."""
    head = _head(dim=2 * DIM, readout=Readout.parse(["mean:9", "last:24"]))

    def mismatches(hidden_size: int, layer_count: int | None) -> list[str]:
        return head_mismatches(
            head,
            model_digest=head.model_digest,
            hidden_size=hidden_size,
            template_hash="sha256:t",
            prompt_prefix_hash="sha256:p",
            layer_count=layer_count,
        )

    assert mismatches(DIM, 24) == [
        "the readout reads last:24, and the model has layers 0 to 23; refit it: "
        "`switchboard eval fit-head --data eval/data/dev.csv --out <policy dir>/…`"
    ]
    assert mismatches(DIM, 25) == []
    (size,) = mismatches(2 * DIM, None)
    assert f"reads {2 * DIM} floats" in size
    assert "times 2 for readout ['mean:9', 'last:24']" in size


def _install_head(policy_dir: Path, edit: Editor, **changes: object) -> ProbeHead:
    """A head that matches the copied policy's prompt (unless ``changes`` say otherwise)."""
    loaded = load_policy(policy_dir, policy_dir.parent.parent / "prompts")
    prompts = PromptBuilder(loaded.policy, loaded.prompts_dir)
    head = _head(template_hash=prompts.template_hash, prefix_hash=prompts.prefix_hash)
    head = replace(head, **changes)  # type: ignore[arg-type]
    (policy_dir / "head.json").write_text(head.to_json(), encoding="utf-8")
    thresholds = {
        "informational": 0.5,
        "service_action": 0.5,
        "safety_compliance": 0.3,
        "safety_escalation": 0.2,
    }
    edit("policy.yaml", lambda d: d.update(head={"file": "head.json", "thresholds": thresholds}))
    return head


async def test_the_engine_decides_with_the_head_when_the_verdict_has_a_state(
    policy_copy: Path, edit_policy: Editor
) -> None:
    head = _install_head(policy_copy, edit_policy)
    loaded = load_policy(policy_copy, policy_copy.parent.parent / "prompts")
    # The state the head reads as safety; the label probabilities say service.
    state = (head.mean + head.scale * head.weights[2] * 3).astype(np.float32)
    label_only = Scripted.label(Category.SERVICE_ACTION, 0.9)
    backend = FakeBackend([replace(label_only, hidden_state=state), label_only])
    engine = Engine.build(loaded, backend, rules_cache=RulesCache())
    request = DecisionRequest("Where is my parcel?", Channel.CHAT)

    with_state = await engine.decide(request)
    assert with_state.llm.method == "probe_head"
    assert with_state.llm.label is SAFETY
    assert with_state.category is SAFETY
    assert with_state.llm.probabilities[Category.SERVICE_ACTION] == pytest.approx(0.9)
    assert with_state.llm.calibrated == pytest.approx(
        head.probabilities(state, with_state.llm.probabilities)
    )
    assert len(encode_record(with_state)) < 6000  # the 16 (or 896) floats are not recorded

    without = await engine.decide(request)  # Ollama, a timeout: today's path
    assert without.llm.method == "scripted"
    assert without.llm.label is Category.SERVICE_ACTION
    assert without.category is Category.SERVICE_ACTION


async def test_a_fusing_head_reads_the_same_verdicts_label_probabilities(
    policy_copy: Path, edit_policy: Editor
) -> None:
    """The state leans safety a little; the label probabilities say service strongly: with a
    label weight the service answer wins, without one the state decides."""
    base = _head()
    state = (base.mean + base.scale * base.weights[2] * 0.05).astype(np.float32)
    label_only = Scripted.label(Category.SERVICE_ACTION, 0.98)
    request = DecisionRequest("Where is my parcel?", Channel.CHAT)
    labels: dict[float, Category | None] = {}
    for weight in (0.0, 4.0):
        head = _install_head(policy_copy, edit_policy, label_weight=weight)
        loaded = load_policy(policy_copy, policy_copy.parent.parent / "prompts")
        backend = FakeBackend([replace(label_only, hidden_state=state)])
        record = await Engine.build(loaded, backend, rules_cache=RulesCache()).decide(request)
        assert record.llm.method == "probe_head"
        assert record.llm.calibrated == pytest.approx(
            head.probabilities(state, record.llm.probabilities)
        )
        labels[weight] = record.llm.label
    assert labels == {0.0: SAFETY, 4.0: Category.SERVICE_ACTION}


def test_a_refitted_head_is_a_new_revision(policy_copy: Path, edit_policy: Editor) -> None:
    _install_head(policy_copy, edit_policy)
    prompts = policy_copy.parent.parent / "prompts"
    before = load_policy(policy_copy, prompts).revision
    _install_head(policy_copy, edit_policy, n=11)
    assert load_policy(policy_copy, prompts).revision != before


def test_build_refuses_a_head_for_another_model_at_its_line(
    policy_copy: Path, edit_policy: Editor
) -> None:
    _install_head(policy_copy, edit_policy, model_digest="sha256:" + "0" * 64)
    loaded = load_policy(policy_copy, policy_copy.parent.parent / "prompts")
    with pytest.raises(PolicyError) as caught:
        Engine.build(loaded, FakeBackend(), rules_cache=RulesCache())
    (problem,) = caught.value.problems
    assert problem.file.endswith("policy.yaml")
    assert re.fullmatch(r"\d+ \(head\.file\)", problem.location), problem.location
    assert "fitted for model" in problem.message


class _ServingModel(FakeBackend):
    """A fake that says which model file it serves and how wide its hidden state is."""

    hidden_state_size = DIM
    layer_count = QWEN25_CODER_05B.layers

    def __init__(self, digest: str) -> None:
        super().__init__()
        self.model_digest = digest


def test_a_head_for_the_optional_model_builds_until_another_model_serves(
    policy_copy: Path, edit_policy: Editor
) -> None:
    """``check`` cannot know which packaged model will serve, so it accepts a head for either;
    the backend that loads a model refuses a head fitted for the other."""
    _install_head(
        policy_copy, edit_policy, model=QWEN25_CODER_15B.name, model_digest=QWEN25_CODER_15B.digest
    )
    loaded = load_policy(policy_copy, policy_copy.parent.parent / "prompts")
    Engine.build(loaded, FakeBackend(), rules_cache=RulesCache())
    Engine.build(loaded, _ServingModel(QWEN25_CODER_15B.digest), rules_cache=RulesCache())
    with pytest.raises(PolicyError, match=f"fitted for model {re.escape(QWEN25_CODER_15B.name)}"):
        Engine.build(loaded, _ServingModel(QWEN25_CODER_05B.digest), rules_cache=RulesCache())


def test_check_refuses_a_head_for_another_model(policy_copy: Path, edit_policy: Editor) -> None:
    _install_head(policy_copy, edit_policy, model_digest="sha256:" + "0" * 64)
    done = subprocess.run(
        [sys.executable, "-m", "engine", "check", str(policy_copy.parent)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1, done.stdout
    assert re.search(r"policy\.yaml:\d+ \(head\.file\): the head was fitted for model", done.stderr)
    assert "switchboard eval fit-head" in done.stderr
    assert "1 problem(s) found" in done.stderr


def test_build_refuses_a_readout_of_a_layer_the_packaged_model_lacks(
    policy_copy: Path, edit_policy: Editor
) -> None:
    """Without a model loaded (``check``), the packaged model's layer count decides."""
    readout = Readout.parse(["last:final", f"mean:{QWEN25_CODER_05B.layers}"])
    _install_head(policy_copy, edit_policy, readout=readout)
    loaded = load_policy(policy_copy, policy_copy.parent.parent / "prompts")
    with pytest.raises(PolicyError) as caught:
        Engine.build(loaded, FakeBackend(), rules_cache=RulesCache())
    (problem,) = caught.value.problems
    assert re.fullmatch(r"\d+ \(head\.file\)", problem.location), problem.location
    assert f"reads mean:{QWEN25_CODER_05B.layers}, and the model has layers 0 to 23" in (
        problem.message
    )


def test_the_engine_asks_the_backend_for_its_heads_readout(
    policy_copy: Path, edit_policy: Editor
) -> None:
    readout = Readout.parse(["mean:9", "last:final"])
    _install_head(policy_copy, edit_policy, readout=readout)
    loaded = load_policy(policy_copy, policy_copy.parent.parent / "prompts")
    engine = Engine.build(loaded, FakeBackend(), rules_cache=RulesCache())
    assert engine.prompts.render("Where is my parcel?", Channel.CHAT).readout == readout
    headless = replace(loaded, policy=loaded.policy.model_copy(update={"head": None}))
    plain = Engine.build(headless, FakeBackend(), rules_cache=RulesCache())
    assert plain.prompts.render("Where is my parcel?", Channel.CHAT).readout == DEFAULT_READOUT


def test_check_refuses_a_missing_head_file(policy_copy: Path, edit_policy: Editor) -> None:
    _install_head(policy_copy, edit_policy)
    shutil.move(policy_copy / "head.json", policy_copy.parent / "elsewhere.json")
    loaded = load_policy(policy_copy, policy_copy.parent.parent / "prompts")
    with pytest.raises(PolicyError, match=r"head\.file.*fit-head"):
        Engine.build(loaded, FakeBackend(), rules_cache=RulesCache())


def test_head_thresholds_are_checked_like_the_policys(
    policy_copy: Path, edit_policy: Editor
) -> None:
    _install_head(policy_copy, edit_policy)
    edit_policy("policy.yaml", lambda d: d["head"]["thresholds"].update(safety_escalation=0.9))
    with pytest.raises(PolicyError, match=r"head\.thresholds\.safety_escalation"):
        load_policy(policy_copy, policy_copy.parent.parent / "prompts")
