"""The ceiling for the throughput benchmark: FastAPI returning a constant, nothing else.

Served by uvicorn exactly as ``switchboard serve`` serves the real app (one process, the same
HTTP and event-loop implementations), so the ratio measures Switchboard's own work.
"""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()
CONSTANT = {"category": "informational", "confidence": 1.0, "degraded": False}


@app.post("/classify")
async def classify() -> dict[str, object]:
    return CONSTANT


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
