"""Hypothesis strategies for PII-ish text: real and near-miss emails, phones, cards, IPs, IBANs...

Each piece is either something a recognizer finds or something just short of it (a digit too
few, a missing ":", a bad checksum), so that the pre-scan's "cannot contain" is tested where it
is most likely to be wrong. ``pii_texts()`` joins pieces with words and separators.
"""

from __future__ import annotations

import string

import phonenumbers
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
# Regions whose numbers stress the phone lemma: short numbers (DE, AT, NU), national-prefix
# transform rules that add digits (SM, GG, IM, AG, CC, MG, NF), and the policy's defaults.
EDGE_REGIONS = ["US", "GB", "DE", "FR", "IL", "IN", "CA", "BR", "AT", "NU", "SM", "GG", "IM"]
EDGE_REGIONS += ["AG", "AR", "CC", "MG", "NF", "TK", "SH", "IT", "JP"]

_TYPES = [
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.MOBILE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE,
    PhoneNumberType.VOIP,
    PhoneNumberType.UAN,
    PhoneNumberType.SHARED_COST,
    PhoneNumberType.PERSONAL_NUMBER,
    PhoneNumberType.PAGER,
    PhoneNumberType.VOICEMAIL,
]
_FORMATS = [
    PhoneNumberFormat.NATIONAL,
    PhoneNumberFormat.INTERNATIONAL,
    PhoneNumberFormat.E164,
    PhoneNumberFormat.RFC3966,
]


def _example_numbers() -> list[str]:
    numbers: list[str] = []
    for region in REGIONS:
        for number_type in _TYPES:
            example = phonenumbers.example_number_for_type(region, number_type)
            if example is not None:
                numbers += [phonenumbers.format_number(example, f) for f in _FORMATS]
    return numbers


EXAMPLE_NUMBERS = _example_numbers()

WORDS = [
    "call", "phone", "mobile", "number", "card", "credit", "visa", "ssn", "social", "security",
    "iban", "bank", "ip", "ipv6", "email", "url", "website", "dob", "date of birth", "born on",
    "order", "refund", "the", "my", "and", "is", "at", "on", "fax", "tel", "ext", "int", "x",
    "anexo", "extension", "xx", "Hi", "thanks", "pharmacy", "tablets", "IBAN", "DOB:", "Ref",
]  # fmt: skip
SEPARATORS = [*"-+(). @/:", " ", "  ", ", ", "\n", "; ", " - ", "#", "x", "/"]
UNICODE_DIGITS = "٠١٢٣٤٥٦٧٨٩０１２３４５６７８９۰۱۲۳४५६"


def _luhn_complete(digits: str) -> str:
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = int(char)
        if i % 2 == 0:
            value = value * 2 - 9 if value * 2 > 9 else value * 2
        total += value
    return digits + str((10 - total % 10) % 10)


def _iban_complete(country: str, bban: str) -> str:
    rearranged = bban + country + "00"
    numeric = "".join(str(int(char, 36)) for char in rearranged)
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


def _group(text: str, sizes: list[int], separator: str) -> str:
    parts, i = [], 0
    for size in sizes:
        if i < len(text):
            parts.append(text[i : i + size])
            i += size
    if i < len(text):
        parts.append(text[i:])
    return separator.join(parts)


digit_runs = st.text(alphabet=string.digits, min_size=1, max_size=20)
grouped_digits = st.builds(
    _group,
    st.text(alphabet=string.digits, min_size=3, max_size=19),
    st.lists(st.integers(1, 5), min_size=1, max_size=6),
    st.sampled_from([" ", "-", ".", "", "/", " - ", "x"]),
)
cards = st.builds(
    _group,
    st.builds(
        _luhn_complete,
        st.builds(
            lambda head, body: head + body,
            st.sampled_from(["4", "51", "55", "37", "6011", "35", "1"]),
            st.text(alphabet=string.digits, min_size=8, max_size=16),
        ),
    ),
    st.sampled_from([[4, 4, 4, 4], [4, 6, 5], [4, 4, 4], [16], [4, 4, 4, 3]]),
    st.sampled_from([" ", "-", ""]),
)
ssns = st.builds(
    lambda a, b, c, sep: f"{a}{sep}{b}{sep}{c}",
    st.integers(0, 999).map("{:03d}".format),
    st.integers(0, 99).map("{:02d}".format),
    st.integers(0, 9999).map("{:04d}".format),
    st.sampled_from(["-", " ", ".", ""]),
)
ipv4 = st.builds(
    lambda parts, dots: dots.join(str(p) for p in parts),
    st.lists(st.integers(0, 300), min_size=2, max_size=5),
    st.sampled_from([".", ". ", ":"]),
)
ipv6 = st.builds(
    lambda groups, gap: ":".join(groups[:3]) + ("::" if gap else ":") + ":".join(groups[3:]),
    st.lists(
        st.text(alphabet="0123456789abcdefABCDEF", min_size=1, max_size=4), min_size=3, max_size=8
    ),
    st.booleans(),
)
# BBAN shapes per country ("9": a digit, "A": a capital letter, "X": either), so that generated
# IBANs pass Presidio's per-country format check; NO's is the shortest IBAN (15 characters).
_BBANS = {
    "NO": "99999999999",
    "BE": "999999999999",
    "DK": "99999999999999",
    "NL": "AAAA9999999999",
    "GB": "AAAA99999999999999",
    "DE": "999999999999999999",
    "FR": "9999999999XXXXXXXXXXX99",
    "CH": "99999XXXXXXXXXXXX",
    "IT": "A9999999999XXXXXXXXXXXX",
}
_SHAPE = {
    "9": string.digits,
    "A": string.ascii_uppercase,
    "X": string.digits + string.ascii_uppercase,
}


@st.composite
def _valid_ibans(draw: st.DrawFn) -> str:
    country = draw(st.sampled_from(sorted(_BBANS)))
    bban = "".join(draw(st.sampled_from(_SHAPE[c])) for c in _BBANS[country])
    iban = _iban_complete(country, bban)
    grouped = draw(st.sampled_from([iban, _group(iban, [4] * 9, " "), _group(iban, [4] * 9, "-")]))
    return draw(st.sampled_from([grouped, grouped.lower(), grouped[:-1], grouped + "1"]))


ibans = st.one_of(
    _valid_ibans(),
    st.builds(
        lambda cc, digits, rest: cc + digits + rest,
        st.text(alphabet=string.ascii_letters + "\u017f\u212a", min_size=2, max_size=2),
        st.text(alphabet=string.digits, min_size=2, max_size=2),
        st.text(alphabet=string.ascii_letters + string.digits + " -", min_size=0, max_size=20),
    ),
)
emails = st.builds(
    lambda local, domain, tld: f"{local}@{domain}.{tld}",
    st.text(alphabet=string.ascii_letters + string.digits + "._+-'", min_size=1, max_size=10),
    st.text(alphabet=string.ascii_lowercase + "-", min_size=1, max_size=10),
    st.sampled_from(["com", "co.uk", "org", "museum", "invalid", "x", "de", "io"]),
) | st.sampled_from(["a@b", "@", "x@", "@example.com", "jo @ example.com", "jo\uff20example.com"])
urls = st.builds(
    lambda scheme, host, tld, path: f"{scheme}{host}.{tld}{path}",
    st.sampled_from(["", "http://", "https://", "www.", "ftp://"]),
    st.text(alphabet=string.ascii_lowercase + string.digits + "-", min_size=1, max_size=10),
    st.sampled_from(["com", "org", "net", "uk", "shop", "xyz", "q"]),
    st.sampled_from(["", "/", "/a?b=1", "/orders/4471"]),
)
dates = st.builds(
    lambda label, a, b, c, sep: f"{label}{a}{sep}{b}{sep}{c}",
    st.sampled_from(["DOB: ", "dob ", "date of birth ", "born on ", "Born On:", "", "on "]),
    st.integers(0, 3000),
    st.integers(0, 40),
    st.integers(0, 3000),
    st.sampled_from(["/", "-", ".", " "]),
)
phones = st.one_of(
    st.sampled_from(EXAMPLE_NUMBERS),
    # an example number with a digit dropped or added: near misses of the length bounds
    st.builds(
        lambda number, cut: number[:cut] + number[cut + 1 :],
        st.sampled_from(EXAMPLE_NUMBERS),
        st.integers(0, 20),
    ),
    st.builds(
        lambda number, extra: number + extra,
        st.sampled_from(EXAMPLE_NUMBERS),
        st.sampled_from(["1", " 1", "x1", " ext 12", " int 3", "#", "-5"]),
    ),
    st.builds(
        lambda lead, digits: lead + digits,
        st.sampled_from(["+", "(", "+1 ", "00", "011 "]),
        grouped_digits,
    ),
    st.text(alphabet=UNICODE_DIGITS + " -", min_size=4, max_size=14),
)
pieces = st.one_of(
    st.sampled_from(WORDS),
    st.sampled_from(SEPARATORS),
    digit_runs,
    grouped_digits,
    phones,
    cards,
    ssns,
    ipv4,
    ipv6,
    ibans,
    emails,
    urls,
    dates,
    st.text(max_size=8),
)


def pii_texts(max_pieces: int = 8) -> st.SearchStrategy[str]:
    """Texts of a few pieces, each joined to the next by a separator or directly."""
    return st.lists(
        st.tuples(pieces, st.sampled_from([*SEPARATORS, ""])), min_size=1, max_size=max_pieces
    ).map(lambda parts: "".join(piece + joint for piece, joint in parts))
