"""``python -m eval.bench``'s options: a mistyped quantization is refused before any work."""

from __future__ import annotations

import pytest

from eval.bench.__main__ import main


def test_quant_refuses_a_type_llama_cpp_does_not_know(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["quant", "--quant-types", "BF16,Q9_9"])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "llama.cpp knows no Q9_9" in error
    assert "BF16" in error.split("it knows", 1)[1]  # the choices are listed
