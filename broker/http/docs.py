"""The API's documentation pages, /docs (Swagger UI) and /redoc (ReDoc), served with no
request leaving the broker: FastAPI's defaults load the pages' JavaScript, CSS, favicon and
fonts from CDNs, so on a network without internet /docs was a blank page.

The assets come from the `fastapi-offline` package (Swagger UI 5, ReDoc 2, MIT/Apache-2.0
licensed, refreshed from the same CDN paths FastAPI uses); this module only serves its
static folder under /docs/assets. Swagger UI 5 is needed: FastAPI writes OpenAPI 3.1.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from broker.errors import ConfigError

ASSETS = "/docs/assets"
ASSETS_PACKAGE = (
    "fastapi_offline"  # ships swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js
)
# Swagger UI's default validator badge calls validator.swagger.io; off, like every outside call.
SWAGGER_PARAMETERS = {"validatorUrl": None, "defaultModelsExpandDepth": 0}
# The browser itself keeps the pages on this origin: ReDoc's "by Redocly" logo, for one, is
# an image on cdn.redoc.ly. Both pages start their UI with an inline script; ReDoc's search
# runs in a blob: worker.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; worker-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
}


def assets_dir() -> Path:
    """The installed asset folder, found without importing the package's code."""
    spec = importlib.util.find_spec(ASSETS_PACKAGE)
    places = list(spec.submodule_search_locations or []) if spec is not None else []
    for place in places:
        if (Path(place) / "static" / "swagger-ui-bundle.js").is_file():
            return Path(place) / "static"
    raise ConfigError(
        f"the API documentation assets are missing: reinstall s284-broker ({ASSETS_PACKAGE})"
    )


def install_docs(app: FastAPI) -> None:
    """Mount the assets and the two pages; call on an app made with docs_url=None and
    redoc_url=None so FastAPI's CDN-bound pages are not mounted as well."""
    app.mount(ASSETS, StaticFiles(directory=assets_dir()), name="docs-assets")
    title = f"{app.title} API"
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _with_headers(
            get_swagger_ui_html(
                openapi_url=openapi_url,
                title=title,
                swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
                swagger_css_url=f"{ASSETS}/swagger-ui.css",
                swagger_favicon_url=f"{ASSETS}/favicon.png",
                swagger_ui_parameters=SWAGGER_PARAMETERS,
            )
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return _with_headers(
            get_redoc_html(
                openapi_url=openapi_url,
                title=title,
                redoc_js_url=f"{ASSETS}/redoc.standalone.js",
                redoc_favicon_url=f"{ASSETS}/favicon.png",
                with_google_fonts=False,
            )
        )


def _with_headers(page: HTMLResponse) -> HTMLResponse:
    page.headers.update(HEADERS)
    return page
