"""The playground page: a message decided under the active policy and a candidate, side by side.

A compliance author pastes a message or picks one from a labelled file, names a candidate policy
directory on the server and sees both decisions with every difference marked in words and a
symbol (never colour alone). The comparison is ``service.playground``, i.e. the replay
``switchboard diff`` runs: at most one model call when the candidate's prompt is the same.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse

from engine.categories import Channel
from engine.errors import PolicyError, PolicyNotFoundError, ReplayError
from engine.replay import ReplayCase
from service.access.control import Caller
from service.access.principal import Permission
from service.playground import Playground, Trial, pasted
from service.state import app_state
from service.workbench.access import csrf_check, page_caller
from service.workbench.render import render

router = APIRouter()
Author = Annotated[Caller, page_caller(Permission.TRY_POLICIES)]
MAX_MESSAGE_CHARS = 20_000


def _playground(request: Request) -> Playground:
    return app_state(request).playground


def _page(
    request: Request,
    caller: Caller,
    *,
    status_code: int = 200,
    form: dict[str, str],
    trial: Trial | None = None,
    problems: list[str] | None = None,
    error: str | None = None,
    case: ReplayCase | None = None,
) -> HTMLResponse:
    playground = _playground(request)
    active = app_state(request).holder.active
    cases: list[ReplayCase] = []
    pick_error = None
    if form["file"]:
        try:
            cases = playground.labelled_cases(form["file"], form["q"])
        except ReplayError as exc:
            pick_error = str(exc)
    context: dict[str, Any] = {
        "form": form,
        "channels": [c.value for c in Channel],
        "policy_ids": list(active.engines) if active else [],
        "default_policy": active.default_id if active else "",
        "files": playground.labelled_files(),
        "cases": cases,
        "pick_error": pick_error,
        "roots": [str(r) for r in playground.roots],
        "trial": trial,
        "case": case,
        "problems": problems or [],
        "error": error,
    }
    return render(request, caller, "playground.html", status_code=status_code, **context)


def _form(
    message: str = "",
    channel: str = Channel.CHAT.value,
    policy: str = "",
    candidate: str = "",
    file: str = "",
    q: str = "",
    case: str = "",
) -> dict[str, str]:
    return {
        "message": message,
        "channel": channel,
        "policy": policy,
        "candidate": candidate,
        "file": file,
        "q": q,
        "case": case,
    }


@router.get("/playground", response_class=HTMLResponse)
async def playground(
    request: Request,
    caller: Author,
    candidate: str = "",
    policy: str = "",
    file: str = "",
    q: str = "",
) -> HTMLResponse:
    return _page(request, caller, form=_form(policy=policy, candidate=candidate, file=file, q=q))


@router.post("/playground", response_class=HTMLResponse, dependencies=[Depends(csrf_check)])
async def compare(
    request: Request,
    caller: Author,
    message: Annotated[str, Form(max_length=MAX_MESSAGE_CHARS)] = "",
    channel: Annotated[str, Form()] = Channel.CHAT.value,
    policy: Annotated[str, Form()] = "",
    candidate: Annotated[str, Form()] = "",
    file: Annotated[str, Form()] = "",
    q: Annotated[str, Form()] = "",
    case: Annotated[str, Form()] = "",
) -> HTMLResponse:
    form = _form(message, channel, policy, candidate, file, q, case)
    playground = _playground(request)
    try:
        chosen = (
            playground.labelled_case(file, case)
            if case
            else pasted(message, Channel(channel) if channel in _CHANNELS else Channel.CHAT)
        )
    except ReplayError as exc:
        return _page(request, caller, status_code=422, form=form, error=str(exc))
    if case:
        form["message"] = chosen.message
        form["channel"] = chosen.channel.value
    try:
        trial = await playground.compare(chosen, candidate, policy or None)
    except PolicyError as exc:
        problems = [str(p) for p in exc.problems]
        return _page(request, caller, status_code=422, form=form, problems=problems, case=chosen)
    except (ReplayError, PolicyNotFoundError) as exc:
        return _page(request, caller, status_code=422, form=form, error=str(exc), case=chosen)
    return _page(request, caller, form=form, trial=trial, case=chosen)


_CHANNELS = {c.value for c in Channel}
