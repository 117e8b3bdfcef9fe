"""headend's app for other ASGI servers (bench/servers.py): ``HEADEND_CONFIG`` names the
config; ``app`` is a factory (``uvicorn --factory``, ``granian --factory``). ``Protocol`` is
the uvicorn protocol ``headend serve`` uses, on default limits (``uvicorn --http``)."""

from starlette.applications import Starlette

from headend.app import create_app
from headend.config import ServerSettings, load_settings
from headend.observability.logs import configure_logging
from headend.server.ingress import guarded_protocol

Protocol = guarded_protocol(ServerSettings())


def app() -> Starlette:
    settings = load_settings()
    configure_logging(settings.server.log_format, "warning")
    return create_app(settings)
