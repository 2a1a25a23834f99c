"""The HTTP API and web pages (`gateway serve`): FastAPI over the service."""

from gateway.http.api.app import create_app

__all__ = ["create_app"]
