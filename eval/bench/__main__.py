"""``python -m eval.bench [WHICH ...] [--long]``: the benchmarks, short by default.

WHICH: engine, model, long (1,000-2,000-character messages with the model), service, spike,
refusal, reload, soak, profile, audit, search, fairness, shadow, or all (default); ``outage``
(needs RabbitMQ; not part of all) cuts the broker while traffic flows and
writes ``docs/delivery/outage.{csv,json,png}``.
``openai`` (not in all: it starts a llama.cpp server, or uses ``--openai-base-url``).
``readout`` (not in all): the embedded model's time per decision with a head's intermediate-layer
readout against the default, quiet and beside a thread that keeps the GIL busy.
``quant`` (not in all): the packaged model requantized to Q4_0, Q8_0, IQ4_NL and BF16, long
messages scored with each file (``eval/bench/requantized.py``).
``shadow``: live latency and model calls with a shadow candidate and without (fake backend by
default; ``--shadow-backend embedded`` runs the packaged model, a few requests per second).

``model --model NAME``, ``long --model NAME --policy DIR``: another packaged model (``switchboard
model list``); for ``long``, with a policy whose head was fitted for it.

Spike options: ``--max-loop-lag-ms N`` and ``--busy-cores K`` (see ``eval/bench/spike.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.backends.model_files import DEFAULT_MODEL, packaged_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.bench", description=__doc__)
    parser.add_argument("which", nargs="*", default=["all"])
    parser.add_argument("--long", action="store_true", help="the long versions")
    parser.add_argument(
        "--max-loop-lag-ms",
        type=float,
        default=0,
        help="spike: SWITCHBOARD_MAX_LOOP_LAG_MS for the server (0: off)",
    )
    parser.add_argument(
        "--busy-cores",
        type=int,
        default=0,
        help="spike: processes that spin during the run (a machine with noisy neighbours)",
    )
    parser.add_argument(
        "--openai-base-url", help="openai: an OpenAI-compatible server (default: start one)"
    )
    parser.add_argument("--openai-model", default=None, help="openai: the served model name")
    parser.add_argument(
        "--shadow-backend",
        choices=("fake", "embedded"),
        default="fake",
        help="shadow: the backend the server runs",
    )
    parser.add_argument(
        "--shadow-seconds", type=float, default=None, help="shadow: seconds per phase"
    )
    parser.add_argument("--shadow-rps", type=float, default=None, help="shadow: offered load")
    parser.add_argument(
        "--shadow-rounds", type=int, default=3, help="shadow: rounds the phases take in turn"
    )
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="model, long: the packaged model (`switchboard model list`; default: the default)",
    )
    parser.add_argument(
        "--policy",
        default="policies/contact-center",
        help="long: the policy directory (a head must be fitted for --model)",
    )
    parser.add_argument(
        "--quant-types",
        default=None,
        help="quant: which requantizations, comma-separated (default: Q4_0,Q8_0,IQ4_NL,BF16)",
    )
    args = parser.parse_args(argv)
    which = set(args.which)
    everything = "all" in which
    if everything or "engine" in which:
        from eval.bench import engine_overhead

        engine_overhead.run(n=20_000 if args.long else 5_000)
    if everything or "model" in which:
        from eval.bench import model_path

        model_path.run(packaged_model(args.model), n=60 if args.long else 20)
    if everything or "long" in which:
        from eval.bench import long_messages

        long_messages.run(packaged_model(args.model), Path(args.policy))
    if "readout" in which:
        from eval.bench import readout_cost

        readout_cost.run(packaged_model(args.model), Path(args.policy))
    if "quant" in which:
        from eval.bench import requantized

        types = tuple(args.quant_types.split(",")) if args.quant_types else requantized.TYPES
        if unknown := sorted(set(types) - set(requantized.known_types())):
            parser.error(
                f"--quant-types: llama.cpp knows no {', '.join(unknown)}; "
                f"it knows {', '.join(requantized.known_types())}"
            )
        requantized.run(types=types)
    if "openai" in which:
        from eval.bench import openai_path

        kwargs = {"model": args.openai_model} if args.openai_model else {}
        openai_path.run(n=60 if args.long else 20, base_url=args.openai_base_url, **kwargs)
    if everything or "service" in which:
        from eval.bench import service_throughput

        service_throughput.run(seconds=30 if args.long else 10, rounds=3 if args.long else 1)
    if everything or "spike" in which:
        from eval.bench import spike

        phase = 30 if args.long else 10
        spike.run(
            steady_s=phase,
            spike_s=30 if args.long else 10,
            after_s=phase,
            max_loop_lag_ms=args.max_loop_lag_ms,
            busy_cores=args.busy_cores,
        )
    if everything or "refusal" in which:
        from eval.bench import refusal

        refusal.run()
    if everything or "reload" in which:
        from eval.bench import reload_load

        reload_load.run(reloads=100)
    if everything or "soak" in which:
        from eval.bench import soak

        soak.run(seconds=1800 if args.long else 60, sample_s=60 if args.long else 10)
    if everything or "profile" in which:
        from eval.bench import profile

        profile.run()
    if everything or "audit" in which:
        from eval.bench import audit_store

        audit_store.run(count=20_000 if args.long else 5_000)
    if everything or "search" in which:
        from eval.bench import search

        search.run(count=500_000 if args.long else 100_000)
    if everything or "fairness" in which:
        from eval.bench import fairness

        fairness.run(seconds=30 if args.long else 10)
    if everything or "shadow" in which:
        from eval.bench import shadow_overhead

        embedded = args.shadow_backend == "embedded"
        shadow_overhead.run(
            backend=args.shadow_backend,
            seconds=args.shadow_seconds or (60 if args.long else 20),
            rps=args.shadow_rps or 50,
            connections=1 if embedded and args.shadow_rps is None else None,
            rounds=args.shadow_rounds,
        )
    if "outage" in which:
        from eval.bench import broker_outage

        broker_outage.run(outage_s=30 if args.long else 15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
