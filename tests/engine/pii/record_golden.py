"""Record ``golden.json``: what a given revision's ``PresidioRedactor`` makes of ``corpus.csv``.

``python -m tests.engine.pii.record_golden --rev REV`` loads ``engine/pii/presidio.py`` as it was
at git revision ``REV`` (``git show``, into a private module; the working tree is not touched) and
redacts every corpus line under each configuration in ``CONFIGS``. ``test_golden.py`` then checks
that today's redactor gives the same output, line by line. Re-record only on purpose (a Presidio
upgrade, a policy change), and read the diff of ``golden.json`` before committing it.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import subprocess
import sys
import types
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from engine.pii.base import Redacted
from engine.policy.loader import load_policy
from engine.policy.model import Redaction

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent.parent
CORPUS = HERE / "corpus.csv"
GOLDEN = HERE / "golden.json"


def _repository_redaction() -> Redaction:
    return load_policy(REPO / "policies" / "contact-center", REPO / "prompts").policy.redaction


# name -> the policy ``redaction`` section it stands for. The first is the repository policy
# (eight default phone regions, one custom pattern); the others cover a policy without custom
# patterns and one with a narrower phone search.
CONFIGS: dict[str, Callable[[], Redaction]] = {
    "contact-center": _repository_redaction,
    "defaults": Redaction,
    "contact-center-phone-US-GB": lambda: _repository_redaction().model_copy(
        update={"phone_regions": ["US", "GB"]}
    ),
}


def read_corpus() -> list[tuple[str, str]]:
    with CORPUS.open(newline="", encoding="utf-8") as file:
        return [(row["id"], row["text"]) for row in csv.DictReader(file)]


def corpus_digest() -> str:
    return hashlib.sha256(CORPUS.read_bytes()).hexdigest()


def as_record(result: Redacted) -> dict[str, Any]:
    return {"text": result.text, "entities": list(result.entities)}


def _redactor_class_at(rev: str) -> Any:
    source = subprocess.run(
        ["git", "show", f"{rev}:engine/pii/presidio.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType("_golden_presidio")
    module.__file__ = f"<{rev}:engine/pii/presidio.py>"
    sys.modules[module.__name__] = module
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102 - our own file
    return module.PresidioRedactor


def record(rev: str) -> dict[str, Any]:
    redactor_class = _redactor_class_at(rev)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    corpus = read_corpus()
    configs: dict[str, Any] = {}
    for name, redaction in CONFIGS.items():
        redactor = redactor_class(redaction())
        configs[name] = {text_id: as_record(redactor.redact(text)) for text_id, text in corpus}
    return {
        "about": (
            "Redaction of every line of corpus.csv by engine/pii/presidio.py at "
            f"{commit}, for each configuration in record_golden.CONFIGS. test_golden.py "
            "checks today's PresidioRedactor against it."
        ),
        "generated_by": f".venv/bin/python -m tests.engine.pii.record_golden --rev {rev}",
        "source_commit": commit,
        "corpus_sha256": corpus_digest(),
        "versions": {
            package: version(package)
            for package in ("presidio-analyzer", "presidio-anonymizer", "phonenumbers", "spacy")
        },
        "configs": configs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.engine.pii.record_golden")
    parser.add_argument("--rev", required=True, help="git revision whose presidio.py to use")
    args = parser.parse_args(argv)
    golden = record(args.rev)
    GOLDEN.write_text(json.dumps(golden, indent=1, ensure_ascii=False) + "\n", "utf-8")
    print(f"wrote {GOLDEN} ({sum(len(c) for c in golden['configs'].values())} results)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
