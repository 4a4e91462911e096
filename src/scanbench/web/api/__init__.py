"""The JSON API of the web application (``/api/v1``): :func:`create_app`."""

from scanbench.web.api.app import create_app

__all__ = ["create_app"]
