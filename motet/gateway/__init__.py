"""The task gateway: wallet-signed task orders run under a delegation, over HTTP, with a signing page.

`Gateway(chain, registry, session_key=..., workflows=...)` serves it (`async with gateway.running() as url`);
an order it will not take is an `OrderRefused` (`motet.errors`), whose `status` is the HTTP status answered.
"""

from motet.errors import OrderRefused
from motet.gateway._server import Gateway

__all__ = ["Gateway", "OrderRefused"]
