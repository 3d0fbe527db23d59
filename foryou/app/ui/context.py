"""What every page needs: the configuration (home_mixer's address, the models root) and the
templates, on `request.app.state.ui`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from foryou.core.settings import Settings

TEMPLATES = Path(__file__).parent / "templates"


@dataclass(slots=True)
class UiConfig:
    home_mixer_address: str  # host:port of the running home_mixer (gRPC)
    models_root: Path  # the model registry (and the demo's checkpoints)
    settings: Settings | None = None  # TLS settings of the gRPC channel (None = plaintext)
    timeout_s: float = 30.0  # of one feed request


class UiContext:
    def __init__(self, config: UiConfig) -> None:
        self.config = config
        self.templates = Jinja2Templates(directory=str(TEMPLATES))

    def render(
        self, request: Request, template: str, context: dict[str, Any], status_code: int = 200
    ) -> Response:
        base = {"home_mixer": self.config.home_mixer_address, "models_root": str(self.config.models_root)}
        return self.templates.TemplateResponse(
            request, template, {**base, **context}, status_code=status_code
        )


def ui_of(request: Request) -> UiContext:
    ui: UiContext = request.app.state.ui
    return ui
