"""A llama.cpp model's vocabulary: ChatML prompts as tokens, answer tokens, token counts.

The embedded backend keeps two: one over the model it decodes with, used in its worker thread,
and one over a vocabulary-only load of the same file, used on the event loop to count a
message's tokens (``TokenCounter``), so the two threads never share a llama.cpp object.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.backends.base import ChatMessage

_PIECE_BUFFER = 256  # longest Qwen2.5 token piece is 128 bytes


class Vocabulary:
    """Tokenization with one ``llama_cpp.Llama`` (``llama_cpp`` is the module: ``lc``)."""

    def __init__(self, lc: Any, llm: Any) -> None:
        self._lc = lc
        self._llm = llm
        self._vocab = lc.llama_model_get_vocab(llm.model)
        self._n_vocab: int = llm.n_vocab()
        self._by_first_char: dict[str, list[tuple[int, str]]] | None = None  # on first use
        self._label_tokens: dict[tuple[str, ...], list[npt.NDArray[np.intp]]] = {}
        self._special_cache: dict[str, list[int]] = {}
        self._no_token = (lc.llama_token * 1)()

    def piece(self, token: int, *, special: bool) -> str:
        buf = ctypes.create_string_buffer(_PIECE_BUFFER)
        n = self._lc.llama_token_to_piece(self._vocab, token, buf, _PIECE_BUFFER, 0, special)
        return buf.raw[: max(n, 0)].decode("utf-8", errors="replace")

    def _index(self) -> dict[str, list[tuple[int, str]]]:
        """Every non-control token's text, leading whitespace stripped and casefolded."""
        if self._by_first_char is None:
            index: dict[str, list[tuple[int, str]]] = {}
            for token in range(self._n_vocab):
                text = self.piece(token, special=False).lstrip().casefold()
                if text:
                    index.setdefault(text[0], []).append((token, text))
            self._by_first_char = index
        return self._by_first_char

    def answer_tokens(self, answers: tuple[str, ...]) -> list[npt.NDArray[np.intp]]:
        """Per answer, the ids of tokens whose text is a non-empty prefix of it (cached)."""
        cached = self._label_tokens.get(answers)
        if cached is not None:
            return cached
        sets: list[npt.NDArray[np.intp]] = []
        seen: set[int] = set()
        for answer in answers:
            ids = [t for t, text in self._index().get(answer[:1], []) if answer.startswith(text)]
            if not ids or seen.intersection(ids):
                raise ValueError(f"answers {answers} must be non-empty and start differently")
            seen.update(ids)
            sets.append(np.array(ids, dtype=np.intp))
        self._label_tokens[answers] = sets
        return sets

    def special(self, text: str) -> list[int]:
        tokens = self._special_cache.get(text)
        if tokens is None:
            tokens = list(self._llm.tokenize(text.encode(), add_bos=False, special=True))
            self._special_cache[text] = tokens
        return tokens

    def count(self, text: str) -> int:
        """The tokens ``text`` takes as a message's content (``tokenize``).

        Asks llama.cpp for the count alone (room for no token: it answers minus the count), which
        is about three times faster than ``Llama.tokenize``, whose buffer is the training
        context's length on every call."""
        data = text.encode()
        lc = self._lc
        n: int = lc.llama_tokenize(self._vocab, data, len(data), self._no_token, 0, False, False)
        return -n if n < 0 else n

    def tokenize(self, messages: Sequence[ChatMessage]) -> tuple[list[int], int]:
        """ChatML tokens, and where the last turn's content starts (the message's tokens).

        Message contents never become control tokens (no forged turns)."""
        tokens: list[int] = []
        content_start = 0
        for message in messages:
            tokens += self.special(f"<|im_start|>{message.role}\n")
            content_start = len(tokens)
            tokens += self._llm.tokenize(message.content.encode(), add_bos=False, special=False)
            tokens += self.special("<|im_end|>\n")
        tokens += self.special("<|im_start|>assistant\n")
        return tokens, content_start
