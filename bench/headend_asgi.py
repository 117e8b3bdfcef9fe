"""headend's app for other ASGI servers (bench/servers.py): ``HEADEND_CONFIG`` names the
config; ``app`` is a factory (``uvicorn --factory``, ``granian --factory``)."""

from starlette.applications import Starlette

from headend.config import load_settings
from headend.observability.logs import configure_logging
from headend.server.app import create_app


def app() -> Starlette:
    settings = load_settings()
    configure_logging(settings.server.log_format, "warning")
    return create_app(settings)
