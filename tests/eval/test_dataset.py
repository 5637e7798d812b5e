"""A message's text key: the same message is recognised across files, ids and line breaks."""

from __future__ import annotations

import pytest

from eval.dataset import text_key


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("Where is my order", "where is my order"),
        ("  Where is\tmy\n\norder  ", "where is my order"),
        ("STRASSE", "strasse"),
        ("Straße", "strasse"),  # casefold, not lower: the German sharp s folds to "ss"
        ("a\u00a0b", "a b"),  # a no-break space is white space too
    ],
)
def test_text_key_folds_white_space_and_case(text: str, key: str) -> None:
    assert text_key(text) == key


def test_different_words_keep_different_keys() -> None:
    assert text_key("refund please") != text_key("refund, please")
