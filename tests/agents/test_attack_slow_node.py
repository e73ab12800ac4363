"""A slow (or stalled) JSON-RPC node must not stall an agent server: its chain reads run on worker threads, so
the card and calls that need no chain read are served while one call waits for the node. The node is anvil
behind a proxy on 127.0.0.1 that holds every request until the test lets it go."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from support.agents import PRICE, call_signer, echo_agent

from motet.agents import AgentClient, AgentServer
from motet.chain import Chain
from motet.payments import ChannelClient
from motet.settings import Settings


class HeldProxy:
    """Forwards JSON-RPC to `upstream`, holding each request while `gate` is closed."""

    def __init__(self, upstream: str) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.held = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if not proxy.gate.is_set():
                    proxy.held += 1
                    proxy.gate.wait(60)
                request = urllib.request.Request(
                    upstream, data=body, headers={"content-type": "application/json"}
                )
                with urllib.request.urlopen(request, timeout=30) as answer:
                    data = answer.read()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(anvil_chain: Chain) -> Iterator[HeldProxy]:
    assert anvil_chain.url is not None
    held = HeldProxy(anvil_chain.url)
    yield held
    held.close()


@pytest.mark.anvil
async def test_a_stalled_node_does_not_stall_the_agent_server(
    anvil_chain: Chain, proxy: HeldProxy, tmp_path: Path
) -> None:
    assert anvil_chain.url is not None
    agent_account, payer_account = anvil_chain.accounts[7], anvil_chain.accounts[8]
    own = Settings(home=tmp_path)  # this test's deployments, apart from the session's
    slow = Chain.connect(proxy.url, "0x" + bytes(agent_account.key).hex(), settings=own)
    slow.contract("PaymentChannels")  # deployed through the proxy while it still answers
    direct = Chain.connect(anvil_chain.url, "0x" + bytes(payer_account.key).hex(), settings=own)
    payer = ChannelClient(direct, payer_account)  # straight to anvil: only the agent's node is slow
    channel = payer.open(agent_account.address, 10 * PRICE).channel_id
    agent, served = echo_agent()
    server = AgentServer(agent, chain=slow, account=agent_account)
    async with server.running() as url, AgentClient(url, signer=call_signer(payer)) as client:
        await client.card()
        proxy.gate.clear()  # the node stops answering
        call = asyncio.create_task(client.invoke("echo", {"text": "waits"}, channel=channel))
        while proxy.held == 0:  # the call is now waiting for its channel read
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(timeout=5) as http:
            started = time.perf_counter()
            card = await http.get(f"{url}/.well-known/agent-registration.json")
            refused = await http.post(f"{url}/invoke", json={"capability": "nope", "input": {}})
            unpriced = await http.post(
                f"{url}/invoke", json={"capability": "echo", "input": {"text": "no channel"}}
            )
            elapsed = time.perf_counter() - started
        assert (card.status_code, refused.status_code, unpriced.status_code) == (200, 404, 402)
        assert elapsed < 2.0, f"served in {elapsed:.2f}s while the node stalled"
        assert not call.done() and served == []
        proxy.gate.set()  # the node answers again: the waiting call goes through
        done = await asyncio.wait_for(call, 30)
    assert done.owed == PRICE and served == ["waits"]
    slow.close()
    direct.close()
