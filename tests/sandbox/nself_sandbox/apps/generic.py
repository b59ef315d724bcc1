"""Any other CS_N custom service: /health and /ready only."""
import os

from . import common


class GenericHandler(common.Handler):
    service = os.environ.get("SERVICE_NAME", "custom")
    routes = {}


if __name__ == "__main__":
    common.serve(GenericHandler, os.environ.get("PORT") or 3000)
