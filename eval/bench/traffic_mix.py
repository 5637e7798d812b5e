"""A fixed mix of 280 varied messages for the engine benchmark, closer to real traffic than six.

Short chats (Bitext, MedicationQA, own cases), emails with quoted replies and signatures, voice
transcripts with disfluencies, VAERS narratives of 300-2,000 characters, and constructed long
emails, transcripts and chats of 1,000-2,000 characters. Drawn from ``eval/data`` with a fixed
seed, so every run sends the same messages in the same order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from engine.categories import Channel
from eval.dataset import LabelledCase, read_cases

SIZE = 280
_SEED = 20261129
_DATA = Path(__file__).resolve().parents[1] / "data"


@dataclass(frozen=True)
class MixedMessage:
    kind: str
    text: str
    channel: Channel


def _draw(rng: random.Random, cases: list[LabelledCase], count: int) -> list[LabelledCase]:
    return rng.sample(cases, min(count, len(cases)))


def _email(rng: random.Random, i: int) -> str:
    """A long reply: the new text, a sign-off and signature, then quoted history."""
    name = rng.choice(["Priya Shah", "Mark Olsen", "Susan Lee", "Tomasz Nowak", "Ana Costa"])
    issue = rng.choice(
        [
            f"I am still waiting for the refund for order {40000 + i * 37}. I returned the "
            "parcel three weeks ago, the tracking shows it was delivered to your warehouse, and "
            "nobody has answered my last two emails.",
            "Since I started the new blood pressure tablets from my last refill I have had "
            "swollen ankles and a dry cough that wakes me up at night. Should I keep taking them?",
            "The seal on the bottle of eye drops was broken when the parcel arrived and the "
            "box looked like it had been opened and taped shut again.",
            "Could you tell me whether the travel vaccine you offer needs two doses, and how far "
            "apart they must be? We leave in five weeks.",
            "My account is locked after too many password attempts and the reset link in your "
            "email has already expired twice. Please unlock it or send a new link.",
        ]
    )
    filler = (
        "I have attached the photos and the delivery note, and I am happy to send anything else "
        "you need. I have been a customer for years and this is the first time I have had to "
        "write more than once about the same thing. "
    )
    quoted = "\n".join(
        f"> {line}"
        for line in (
            "Thank you for contacting Customer Care. We have received your message and a member",
            "of our team will get back to you within two working days. If your question is about",
            "an order, please have your order number ready. If you experienced any side effects,",
            "please tell us as soon as possible so we can report them. Our opening hours are",
            "Monday to Friday 8:00-20:00 and Saturday 9:00-13:00.",
        )
        * rng.randint(1, 3)
    )
    signature = (
        f"{name}\nSenior Account Manager | ACME Logistics Ltd\n"
        f"Tel +44 20 7946 0{100 + i % 900:03d} | {name.split()[0].lower()}@acme-example.co.uk\n"
        "This email and any attachments are confidential and intended solely for the addressee."
    )
    body = f"Hello,\n\n{issue}\n\n{filler * rng.randint(1, 2)}\n\nKind regards,\n{signature}"
    header = f"On Mon, 3 Mar 2025 at 09:{i % 60:02d}, Customer Care <care@example.com> wrote:"
    return f"{body}\n\n{header}\n{quoted}"


def _transcript(rng: random.Random) -> str:
    """A rambling call: fillers, stutters and repeats, as speech-to-text writes them."""
    parts = [
        "um hi yeah so I I'm calling about my uh my order",
        "the the one that was supposed to come on on Tuesday",
        "and uh you know it never came and I I checked the tracking",
        "and it says it was delivered but uh it wasn't I mean nobody was home",
        "so um can you can you uh send it again or or refund me",
        "oh and also uh my my husband he started the the new tablets",
        "and uh he's been like really dizzy you know since since Monday",
        "is that is that normal or should he uh should he stop taking them",
        "hmm let me see the the order number is uh four four seven one two",
        "yeah erm and I I also wanted to ask about the uh the delivery costs",
    ]
    out: list[str] = []
    while sum(len(p) + 1 for p in out) < rng.randint(900, 1900):
        out.append(rng.choice(parts))
    return " ".join(out)


def _long_chat(rng: random.Random, i: int) -> str:
    """A customer pasting everything at once: 1,000-2,000 characters in one chat message."""
    sentences = [
        f"I ordered the allergy tablets on the {i % 28 + 1}th and paid with my card.",
        "The parcel arrived late and the outer box was crushed.",
        "Two of the blister packs were open and some tablets were a different colour.",
        "I took one before I noticed and felt sick for the rest of the evening.",
        "I would like a replacement or a refund, whichever is faster.",
        "Your chat bot kept sending me to the FAQ page, which did not help at all.",
        "Please also update my delivery address for next month to the new flat.",
        "Can you confirm whether the tablets are safe to take with my inhaler?",
    ]
    out: list[str] = []
    target = rng.randint(1000, 2000)
    while sum(len(s) + 1 for s in out) < target:
        out.append(rng.choice(sentences))
    return " ".join(out)[:2000]


def traffic_mix() -> list[MixedMessage]:
    """The 280 messages, in a fixed shuffled order, each with the channel it arrives on."""
    rng = random.Random(_SEED)
    own = read_cases(_DATA / "own.csv")
    extra = read_cases(_DATA / "own_dev_extra.csv")
    vaers = read_cases(_DATA / "public" / "vaers.csv")
    medium = [c for c in vaers if 300 < len(c.text) < 1000]
    long = [c for c in vaers if 1000 <= len(c.text) <= 2000]
    long += [c for c in vaers if len(c.text) > 2000]  # cut to 2,000 below
    drawn: list[tuple[str, list[LabelledCase], int]] = [
        ("bitext", read_cases(_DATA / "public" / "bitext.csv"), 50),
        ("medicationqa", read_cases(_DATA / "public" / "medicationqa.csv"), 35),
        ("own_chat", [c for c in own if c.channel is Channel.CHAT], 40),
        ("own_email", [c for c in own if c.channel is Channel.EMAIL], 14),
        ("own_voice", [c for c in own if c.channel is Channel.VOICE], 14),
        ("own_extra_email", [c for c in extra if c.channel is Channel.EMAIL], 10),
        ("own_extra_chat", [c for c in extra if c.channel is Channel.CHAT], 5),
        ("vaers_300_1000", medium, 30),
    ]
    mix = [
        MixedMessage(kind, case.text, case.channel)
        for kind, cases, count in drawn
        for case in _draw(rng, cases, count)
    ]
    mix += [MixedMessage("vaers_1000_2000", c.text[:2000], Channel.CHAT) for c in long[:30]]
    mix += [MixedMessage("long_email", _email(rng, i), Channel.EMAIL) for i in range(24)]
    mix += [MixedMessage("long_transcript", _transcript(rng), Channel.VOICE) for _ in range(16)]
    mix += [MixedMessage("long_chat", _long_chat(rng, i), Channel.CHAT) for i in range(12)]
    rng.shuffle(mix)
    assert len(mix) == SIZE, f"the mix has {len(mix)} messages, not {SIZE}"
    return mix
