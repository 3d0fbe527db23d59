"""The web page (`foryou ui`, and `foryou up` serves it too): a viewer's feed explained (each
post's action probabilities, weights, multipliers, final score, source and model version; the
removed candidates by filter; the query's hydrated features) and a page per model version with
its training curves and evaluation tables. Server-rendered HTML (Starlette + Jinja2, served by
uvicorn); the pages need no JavaScript."""

from foryou.app.ui.app import create_app
from foryou.app.ui.context import UiConfig
from foryou.app.ui.server import UiServer

__all__ = ["UiConfig", "UiServer", "create_app"]
