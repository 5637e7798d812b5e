"""The messages every benchmark sends: the same few, so runs compare, plus a never-repeating form.

``MESSAGES`` are the six the engine and service benchmarks cycle through (one per kind:
question, service request, adverse event, slang, third-party report, drug question).
``unique_message`` appends tokens never seen before (order numbers, references, names), as real
traffic has: a fixed set of messages would hide growth that depends on the text, such as a
tokenizer's vocabulary.
"""

from __future__ import annotations

import json

MESSAGES = [
    "What is your refund policy for prescription products?",
    "I need to open a ticket because my order never arrived.",
    "I experienced a severe headache and nausea right after taking the medication.",
    "can u change the address on order 5521 pls",
    "My mother fainted after her second dose, what should we do?",
    "Does ibuprofen interact with lisinopril? Asking before I buy.",
]
MODEL_MESSAGES = [
    *MESSAGES,
    "please cancel my subscription",
    "the pills in my refill look different from last time",
    "what are your opening hours on sunday",
    "I got hives all over after the new antibiotic",
]
"""The model benchmark's ten: more variety in length, since each one costs a forward pass."""


def body(message: str) -> bytes:
    return json.dumps({"message": message, "channel": "chat"}).encode()


BODIES = [body(m) for m in MESSAGES]


def unique_message(i: int) -> str:
    """Message ``i``: one of ``MESSAGES`` with three tokens no other ``i`` produces."""
    return f"{MESSAGES[i % len(MESSAGES)]} Order Q{i}X, ref zq{i * 7}k, agent Vb{i * 13}."


def unique_body(i: int) -> bytes:
    return body(unique_message(i))
