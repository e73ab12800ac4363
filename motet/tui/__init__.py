"""`motet tui`: the market, the composer, runs and the wallet in a Textual app.

    app = make_app(chain, market, workflows={"brief": flow}, inputs={"document": "..."})
    app.run()

`market` is a market already serving (tests start one themselves) or a factory of async context managers that
serve one (`functools.partial(local_market, chain, runtime)`): the app enters it on mount, behind a loading
screen, and leaves it on exit. The TUI knows a market only through the small `Market` protocol.
"""

from motet.tui._session import Market, MarketFactory, Session
from motet.tui.app import MotetApp, make_app

__all__ = ["Market", "MarketFactory", "MotetApp", "Session", "make_app"]
