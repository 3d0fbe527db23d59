"""The web page's application: a Starlette app rendering Jinja2 templates on the server (no
JavaScript, no build step). Routes live in one module per page group (feed.py, models.py)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from foryou.app.ui import feed, models
from foryou.app.ui.context import UiConfig, UiContext, ui_of


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return ui_of(request).render(
        request, "error.html", {"status": exc.status_code, "detail": exc.detail}, exc.status_code
    )


def create_app(config: UiConfig) -> Starlette:
    app = Starlette(routes=[*feed.ROUTES, *models.ROUTES], exception_handlers={HTTPException: _http_error})
    app.state.ui = UiContext(config)
    return app
