"""The task gateway: wallet-signed task orders run under a delegation, over HTTP, with a signing page."""

from motet.gateway.server import Gateway, Refused

__all__ = ["Gateway", "Refused"]
