"""A real OpenAI-compatible model server for tests: ``llama-cpp-python[server]`` on loopback.

It serves the packaged GGUF the embedded backend loads, on a free port, in its own process
(so a test can kill it). ``logits_all`` is on: llama-cpp-python reports logprobs only then.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

MODEL_ALIAS = "qwen2.5-coder-0.5b-instruct"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class LlamaServer:
    """One ``python -m llama_cpp.server`` process and its base URL (``…/v1``)."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path
    output: IO[bytes]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        self.output.close()


def start_llama_server(
    model: Path, log: Path, *, n_ctx: int = 2048, start_timeout_s: float = 600
) -> LlamaServer:
    """Start the server and wait until ``/v1/models`` answers (model loaded)."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--model_alias",
        MODEL_ALIAS,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--n_threads",
        str(os.cpu_count() or 1),
        "--logits_all",
        "True",
        "--verbose",
        "False",
    ]
    out = log.open("wb")
    process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    server = LlamaServer(process, f"http://127.0.0.1:{port}/v1", log, out)
    deadline = time.monotonic() + start_timeout_s
    while True:
        if process.poll() is not None:
            server.kill()
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"llama_cpp.server exited: {tail}")
        try:
            if httpx.get(server.url + "/models", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.kill()
            raise RuntimeError("llama_cpp.server did not start in time")
        time.sleep(0.2)
