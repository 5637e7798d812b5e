"""Validate every policy against the checked-in ``policies/policy.schema.json``, as an editor would.

A policy is split over several YAML files merged by top-level key, so no single file is a
complete document: this merges each policy directory the way the engine does (duplicate keys are
errors) and validates the result with plain ``jsonschema``, independently of the pydantic models
the schema is generated from. ``switchboard check`` does the cross-reference checks and makes sure
the checked-in schema is not out of date.

Usage: python .ci/check_policy_schema.py [POLICIES_DIR]   (exit 1 on any problem)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jsonschema

from engine.policy.loader import SCHEMA_FILE, policy_dirs
from engine.policy.yaml_source import read_policy_dir


def check(policies: Path) -> list[str]:
    schema_path = policies / SCHEMA_FILE
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return [f"{schema_path}: not a valid JSON Schema: {exc.message}"]
    validator = cls(schema)
    problems: list[str] = []
    for directory in policy_dirs(policies):
        source, read_problems = read_policy_dir(directory)
        found = [str(p) for p in read_problems]
        for error in sorted(validator.iter_errors(source.document), key=lambda e: list(e.path)):
            path: list[str | int] = list(error.absolute_path)
            if not path and error.validator == "additionalProperties":
                # Name the file that holds each unknown top-level key, not just the first file.
                for key in sorted(set(source.document) - set(schema["properties"])):
                    where = f"{source.file_of([key])}:{source.locate([key])}"
                    found.append(f"{where}: unknown top-level key {key!r} (check the spelling)")
                continue
            found.append(f"{source.file_of(path)}:{source.locate(path)}: {error.message}")
        if not found:
            print(f"ok {directory} against {schema_path}")
        problems += found
    return problems


def main(argv: list[str]) -> int:
    policies = Path(argv[1]) if len(argv) > 1 else Path("policies")
    problems = check(policies)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
