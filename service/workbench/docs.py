"""``/docs``: Swagger UI from the package's own copy, so it works on an air-gapped network.

FastAPI's default page loads Swagger UI from a public CDN; ``create_app`` turns that off
(``docs_url=None``, ``redoc_url=None``: ReDoc is not served) and this route serves the same
page with the vendored ``static/swagger-ui`` files.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

router = APIRouter()


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url or "/openapi.json",
        title=f"{request.app.title} - API",
        swagger_js_url="/static/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url="/static/swagger-ui/swagger-ui.css",
        swagger_favicon_url="/static/favicon.svg",
        # The online validator badge would call a public host with the schema's URL.
        swagger_ui_parameters={"validatorUrl": None},
    )
