"""`motet tui`: the market, the composer, runs and the wallet in a Textual app.

    app = MotetApp(chain, runtime=FunctionRuntime(...))   # serves its own local market on mount
    app.run()

Tests pass a `Market` they started themselves (`MotetApp(chain, market=market)`).
"""

from motet.tui.app import MotetApp

__all__ = ["MotetApp"]
