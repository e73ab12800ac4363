"""B8 (agent server under load): one agent server process, many concurrent payers, paid vs unpaid.

One agent server runs in its own OS process (`python -m bench.b8_load --serve ...`) on anvil, serving a
Python-function capability (`upper`: the text in capitals) as production serves it: `AgentServer` with its
ledger and tab in SQLite files. The same process also answers a bench-only unpaid route, `/free`, that reads
the body as `/invoke` does, validates the input and runs the same capability with `run_capability`, with no
channel, signature, receipt or voucher: the baseline.

The bench process opens one payment channel per payer (each payer its own funded account), then runs
`payers` concurrent asyncio tasks, each with its own `AgentClient` (one pooled connection), for `calls` paid
calls each: every call is signed, its receipt checked, and the voucher for call n rides on call n + 1
(`payment=`); the last one is handed over with `/pay`. The unpaid phase runs the same concurrency and count
against `/free` with one pooled `httpx` client per payer. After a warm-up of both, the two phases alternate
in rounds (a quarter of each payer's calls per round), so that whatever else the machine does falls on both
alike; each phase's time is the sum of its rounds, from all payers starting together to the last one
finishing. The server's CPU time (`/bench/cpu`) and the payers' are taken around each. Afterwards the server
stops and the agent's ledger file is redeemed in one batch transaction, checked per channel against the sum
of the prices in the receipts the payers got: nothing lost, nothing paid twice.

Run alone with `python -m bench.b8_load` (`--quick` for fewer payers and calls, `--clients N` to spread the
payers over N processes, `--profile [wall|cpu]` to print the server's cProfile of the paid phase: the event
loop's top 15 functions by own time and its worker threads' top 8, idle waits left out).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import multiprocessing
import pstats
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import TypeVar

import httpx
from eth_account import Account
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from motet._json import dumps
from motet.agents import Agent, AgentClient, AgentServer, CallContext
from motet.agents._define import run_capability
from motet.agents._wire import HTTPProblem, json_body, problem_response
from motet.chain import Chain
from motet.payments import CallSigner, ChannelClient, Ledger, Voucher

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
TARGET = 0.5
"""Paid calls/s ÷ unpaid calls/s on the same server, in the same run."""
PRICE = 1_000
"""Wei per call."""
CAPABILITY = "upper"
WARMUP_CALLS = 3
ROUNDS = 4
"""The unpaid and paid phases alternate this many times (a chunk of each payer's calls each), so that what
else the machine does falls on both alike."""
CLIENT_PROCESSES = 1
"""Processes the payers are spread over (`--clients`)."""
BARRIER_TIMEOUT = 300.0
"""Seconds a process waits for the others at a phase's start or end before giving up."""
FUNDING = 10**18
"""Wei each payer account gets for its deposit and gas."""


class Text(BaseModel):
    text: str


def b8_agent() -> Agent:
    """The served agent: one cheap Python-function capability at `PRICE` wei a call."""
    agent = Agent("b8-upper", description="B8's load agent: the text in capitals", price=PRICE)

    @agent.capability(CAPABILITY)
    async def upper(request: Text, ctx: CallContext) -> Text:
        """The text in capitals."""
        return Text(text=request.text.upper())

    return agent


# -- the server process -------------------------------------------------------------------------------------


class _ThreadProfiles:
    """cProfile on the server's worker threads (where `AgentServer` runs chain reads and voucher checks off
    the event loop): one profiler per thread, from the thread's start."""

    def __init__(self, timer: Callable[[], float]) -> None:
        self.profiles: list[cProfile.Profile] = []
        self.timer = timer
        self._lock = threading.Lock()

    def start(self) -> None:
        profile = cProfile.Profile(self.timer)
        with self._lock:
            self.profiles.append(profile)
        profile.enable()


async def _serve(rpc: str, key: str, ledger: Path, tab: Path, profile: str | None, dump: Path | None) -> None:
    chain = Chain.connect(rpc, key)
    agent = b8_agent()
    server = AgentServer(
        agent,
        chain=chain,
        account=chain.default_account,
        ledger=Ledger(ledger),
        tab=tab,
        redeem_above=2**255,  # the bench redeems once at the end, not the server on its own
        redeem_after=1e9,
        watch_interval=3600.0,
    )
    capability = agent.get(CAPABILITY)
    timer = time.thread_time if profile == "cpu" else time.perf_counter
    main_profile = cProfile.Profile(timer)
    threads = _ThreadProfiles(timer)
    executor: ThreadPoolExecutor | None = None
    if profile:
        executor = ThreadPoolExecutor(max_workers=8, initializer=threads.start)
        asyncio.get_running_loop().set_default_executor(executor)

    async def free(request: Request) -> Response:
        """The unpaid baseline: the body read as `/invoke` reads it, the input validated, the capability
        run."""
        try:
            body = await json_body(request)
            try:
                parsed = capability.parse_input(body.get("input"))
            except Exception as exc:
                raise HTTPProblem(422, str(exc), field="input") from exc
            done = await run_capability(capability, parsed, agent.runtime)
        except HTTPProblem as problem:
            return problem_response(problem)
        # Written as `/invoke` writes its answers.
        return Response(
            dumps({"capability": done.capability, "output": done.output}), media_type="application/json"
        )

    async def cpu(request: Request) -> Response:
        return JSONResponse({"cpu": time.process_time()})

    async def profiling(request: Request) -> Response:
        if profile:
            if (await request.json()).get("on"):
                main_profile.enable()
            else:
                main_profile.disable()
        return JSONResponse({"profiling": profile is not None})

    server.app.router.routes.extend(
        [
            Route("/free", free, methods=["POST"]),
            Route("/bench/cpu", cpu, methods=["GET"]),
            Route("/bench/profile", profiling, methods=["POST"]),
        ]
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def wait_for_stop() -> None:  # the bench closes our stdin to stop us
        sys.stdin.readline()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait_for_stop, daemon=True).start()
    async with server.running() as url:
        print(f"ready {url}", flush=True)
        await stop.wait()
    server.channels.ledger.close()
    if executor is not None:
        main_profile.disable()
        executor.shutdown(wait=True)  # the workers' profilers stop with their threads
        print(_profile_report(main_profile, threads.profiles, profile == "cpu", dump), flush=True)


_IDLE = ("<method 'poll' of 'select.epoll' objects>", "<method 'get' of '_queue.SimpleQueue' objects>")
"""Where a thread waits for work (the event loop for sockets, a worker for a job): not time any call took."""


def _profile_report(
    main: cProfile.Profile, workers: list[cProfile.Profile], cpu: bool, dump: Path | None
) -> str:
    """The top functions by own time on the event loop, and on the worker threads, idle waits left out."""

    def busy(*profiles: cProfile.Profile) -> tuple[pstats.Stats, float, str]:
        out = io.StringIO()
        stats = pstats.Stats(profiles[0], stream=out)
        for profile in profiles[1:]:
            stats.add(profile)
        table = stats.stats  # type: ignore[attr-defined]
        for key in [key for key in table if key[2] in _IDLE]:
            del table[key]
        stats.total_tt = sum(row[2] for row in table.values())  # type: ignore[attr-defined]
        return stats, stats.total_tt, out.getvalue()  # type: ignore[attr-defined]

    def top(stats: pstats.Stats, n: int) -> list[str]:
        out = io.StringIO()
        stats.stream = out  # type: ignore[attr-defined]
        stats.sort_stats("tottime").print_stats(n)
        text = out.getvalue()
        table = text[text.index("   ncalls") :] if "   ncalls" in text else text
        return [line for line in table.splitlines() if line.strip()]

    loop, loop_s, _ = busy(main)
    if dump is not None:
        loop.dump_stats(dump)
    lines = [
        f"B8 server profile of the paid phase (cProfile, {'CPU' if cpu else 'wall'} seconds, idle waits left "
        "out): event loop busy "
        f"{loop_s:.2f} s, top 15 by own time:",
        *top(loop, 15),
    ]
    if workers:
        pool, pool_s, _ = busy(*workers)
        if dump is not None:
            pool.dump_stats(dump.with_name(dump.name + ".workers"))
        lines += [f"worker threads (chain reads, voucher checks) busy {pool_s:.2f} s, top 8:", *top(pool, 8)]
    return "\n".join(lines)


# -- the payers: client processes ----------------------------------------------------------------------------


@dataclass
class _Payer:
    index: int
    channels: ChannelClient
    channel_id: int
    client: AgentClient | None = None
    voucher: Voucher | None = None
    receipts: int = 0
    """The sum of the prices in the receipts this payer got (wei)."""
    calls: int = 0


@dataclass(frozen=True)
class _Spec:
    """What one client process runs: its payers (index, key, channel id), against the server at `url`."""

    url: str
    rpc: str
    payers: list[tuple[int, str, int]]
    calls: int
    rounds: int


@dataclass
class _ClientResult:
    """What one client process measured: per phase its calls' latencies and its own CPU seconds; per payer
    the sum of its receipts' prices and its calls."""

    unpaid: tuple[list[float], float]
    paid: tuple[list[float], float]
    payers: dict[int, tuple[int, int]]


async def _paid_calls(payer: _Payer, count: int, latencies: list[float] | None) -> None:
    client = payer.client
    assert client is not None
    for _ in range(count):
        started = time.perf_counter()
        call = await client.invoke(
            CAPABILITY,
            {"text": f"payer {payer.index} call {payer.calls}"},
            channel=payer.channel_id,
            payment=payer.voucher,
        )
        if latencies is not None:
            latencies.append(time.perf_counter() - started)
        if call.output != {"text": f"PAYER {payer.index} CALL {payer.calls}"}:
            raise AssertionError(f"payer {payer.index} got {call.output!r}")
        payer.receipts += call.receipt.price
        payer.calls += 1
        payer.voucher = payer.channels.sign(payer.channel_id, call.owed)  # persisted, then sent with the next


async def _free_calls(
    http: httpx.AsyncClient, url: str, index: int, start: int, count: int, latencies: list[float] | None
) -> None:
    for n in range(start, start + count):
        started = time.perf_counter()
        answer = await http.post(
            url + "/free", json={"capability": CAPABILITY, "input": {"text": f"p{index} {n}"}}
        )
        if answer.status_code != 200 or answer.json()["output"] != {"text": f"P{index} {n}"}:
            raise AssertionError(f"/free answered {answer.status_code}: {answer.text[:200]}")
        if latencies is not None:
            latencies.append(time.perf_counter() - started)


async def _phase(
    barrier: Barrier, tasks: Sequence[T], run: Callable[[T, list[float]], Awaitable[None]]
) -> tuple[list[float], float]:
    """After the warm-up: wait for every process (#warm), start together (#go), run every task at once, and
    say so (#done). Returns the latencies and this process's CPU seconds."""
    for _ in range(2):
        await asyncio.to_thread(barrier.wait, BARRIER_TIMEOUT)
    latencies: list[float] = []
    before = time.process_time()
    await asyncio.gather(*(run(task, latencies) for task in tasks))
    cpu = time.process_time() - before
    await asyncio.to_thread(barrier.wait, BARRIER_TIMEOUT)
    return latencies, cpu


def _chunks(calls: int, rounds: int) -> list[int]:
    """`calls` split into `rounds` near-equal parts (the unpaid and paid phases alternate, round by round)."""
    return [calls // rounds + (1 if r < calls % rounds else 0) for r in range(rounds)]


async def _client_run(spec: _Spec, barrier: Barrier) -> _ClientResult:
    chain = Chain.connect(spec.rpc, spec.payers[0][1])
    payers = [
        _Payer(index, ChannelClient(chain, Account.from_key(key), Ledger()), channel_id)
        for index, key, channel_id in spec.payers
    ]
    url = spec.url
    # Unpaid: one pooled client per payer. Paid: one AgentClient per payer. Both warmed up (cards fetched,
    # channels seen by the agent) before the timed rounds.
    frees = {payer.index: httpx.AsyncClient() for payer in payers}
    for payer in payers:
        payer.client = AgentClient(
            url, signer=CallSigner(bytes(payer.channels.account.key), payer.channels.domain)
        )
    unpaid: tuple[list[float], float] = ([], 0.0)
    paid: tuple[list[float], float] = ([], 0.0)
    sent = 0
    try:
        await asyncio.gather(*(_free_calls(h, url, i, 0, WARMUP_CALLS, None) for i, h in frees.items()))
        await asyncio.gather(*(_paid_calls(p, WARMUP_CALLS, None) for p in payers))
        for count in _chunks(spec.calls, spec.rounds):

            async def free(index: int, latencies: list[float], count: int = count, start: int = sent) -> None:
                await _free_calls(frees[index], url, index, start, count, latencies)

            async def paid_calls(payer: _Payer, latencies: list[float], count: int = count) -> None:
                await _paid_calls(payer, count, latencies)

            latencies, cpu = await _phase(barrier, list(frees), free)
            unpaid = (unpaid[0] + latencies, unpaid[1] + cpu)
            latencies, cpu = await _phase(barrier, payers, paid_calls)
            paid = (paid[0] + latencies, paid[1] + cpu)
            sent += count
        # The last call's voucher has no next call to ride on: hand it over.
        for payer in payers:
            assert payer.client is not None and payer.voucher is not None
            held = await payer.client.pay(payer.channel_id, payer.voucher)
            if held != payer.receipts:
                raise AssertionError(
                    f"payer {payer.index}: the agent holds {held} wei, receipts say {payer.receipts}"
                )
    finally:
        await asyncio.gather(*(h.aclose() for h in frees.values()))
        for payer in payers:
            if payer.client is not None:
                await payer.client.aclose()
    return _ClientResult(unpaid, paid, {p.index: (p.receipts, p.calls) for p in payers})


def _client_process(spec: _Spec, barrier: Barrier, results: Queue[_ClientResult | str]) -> None:
    """A client process: its payers' calls, its result (or what failed) on `results`."""
    try:
        results.put(asyncio.run(_client_run(spec, barrier)))
    except BaseException as exc:
        barrier.abort()
        results.put(f"a B8 client process failed: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")


# -- the whole run -------------------------------------------------------------------------------------------


@dataclass
class _Phase:
    seconds: float
    latencies: list[float]
    server_cpu: float
    client_cpu: float

    @property
    def calls(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    def percentile(self, p: int) -> float:
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[p - 1] * 1000

    def server_ms(self) -> float:
        return self.server_cpu / self.calls * 1000

    def client_ms(self) -> float:
        return self.client_cpu / self.calls * 1000

    def describe(self) -> str:
        return (
            f"{self.rate:,.0f} calls/s (p50 {self.percentile(50):.0f} ms, p99 {self.percentile(99):.0f} ms; "
            f"server CPU {self.server_ms():.2f} ms/call, payers' CPU {self.client_ms():.2f} ms/call)"
        )


@dataclass
class B8Result:
    paid: _Phase
    unpaid: _Phase
    payers: int
    calls_each: int
    client_processes: int
    redeemed_calls: int
    redeemed_wei: int
    receipts_wei: int
    transactions: int
    lost_calls: int
    paid_twice_calls: int
    profile: str = field(default="")

    @property
    def ratio(self) -> float:
        return self.paid.rate / self.unpaid.rate

    @property
    def met(self) -> bool:
        return (
            self.ratio >= TARGET
            and self.lost_calls == 0
            and self.paid_twice_calls == 0
            and self.redeemed_wei == self.receipts_wei
            and self.transactions == 1
        )


def _open_channels(chain: Chain, payee: str, count: int, deposit: int) -> list[tuple[int, str, int]]:
    """`count` fresh accounts, funded from the dev accounts, each with a channel to `payee`: (index, key,
    channel id)."""
    accounts = [Account.create() for _ in range(count)]
    funders = chain.accounts[2:]

    def fund(index: int) -> None:
        chain.transfer(accounts[index].address, FUNDING, sender=funders[index % len(funders)])

    def open_one(index: int) -> tuple[int, str, int]:
        state = ChannelClient(chain, accounts[index], Ledger()).open(payee, deposit)
        return index, "0x" + bytes(accounts[index].key).hex(), state.channel_id

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(fund, range(count)))
        return list(pool.map(open_one, range(count)))


def _drive(
    url: str, barrier: Barrier, rounds: int, profile: str | None, processes: list[BaseProcess]
) -> list[tuple[float, float]]:
    """The bench's side of the rounds: per phase, unpaid then paid, (wall seconds, the server's CPU seconds)
    summed over the rounds."""
    measured = [(0.0, 0.0), (0.0, 0.0)]
    with httpx.Client() as http:

        def server_cpu() -> float:
            return float(http.get(url + "/bench/cpu").json()["cpu"])

        for paid in [False, True] * rounds:
            _wait(barrier, processes)  # warm
            cpu = server_cpu()
            if paid and profile is not None:
                http.post(url + "/bench/profile", json={"on": True})
            _wait(barrier, processes)  # go
            started = time.perf_counter()
            _wait(barrier, processes)  # done
            seconds = time.perf_counter() - started
            if paid and profile is not None:
                http.post(url + "/bench/profile", json={"on": False})
            seconds_so_far, cpu_so_far = measured[paid]
            measured[paid] = (seconds_so_far + seconds, cpu_so_far + server_cpu() - cpu)
    return measured


def _wait(barrier: Barrier, processes: list[BaseProcess]) -> None:
    try:
        barrier.wait(BARRIER_TIMEOUT)
    except threading.BrokenBarrierError:
        for process in processes:
            process.join(5)
        raise


def bench_b8(
    payers: int = 64,
    calls: int = 100,
    *,
    clients: int = CLIENT_PROCESSES,
    rounds: int = ROUNDS,
    profile: str | None = None,
    profile_out: Path | None = None,
) -> B8Result:
    """Run B8: `payers` concurrent payers (spread over `clients` processes) × `calls` paid calls against one
    agent server process, and the same against its unpaid route; redeem once and check every channel against
    its receipts."""
    with Chain.anvil() as chain, tempfile.TemporaryDirectory(prefix="motet-b8-") as scratch:
        agent_account = chain.accounts[1]
        ChannelClient(chain, agent_account)  # deploys motet's contracts at their deterministic addresses
        ledger_path, tab_path = Path(scratch) / "agent-ledger.db", Path(scratch) / "agent-tab.db"
        opened = _open_channels(chain, agent_account.address, payers, 2 * PRICE * (calls + WARMUP_CALLS))
        assert chain.url is not None
        command = [
            sys.executable, "-m", "bench.b8_load", "--serve", "--rpc", chain.url,
            "--key", "0x" + bytes(agent_account.key).hex(),
            "--ledger", str(ledger_path), "--tab", str(tab_path),
        ]  # fmt: skip
        if profile is not None:
            command += ["--profile", profile]
            if profile_out is not None:
                command += ["--profile-out", str(profile_out.resolve())]
        server = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        context = multiprocessing.get_context("spawn")
        processes: list[BaseProcess] = []
        try:
            assert server.stdout is not None and server.stdin is not None
            ready = server.stdout.readline().split()
            if len(ready) != 2 or ready[0] != "ready":
                raise RuntimeError(f"the B8 server did not start (it said {' '.join(ready)!r})")
            url = ready[1]
            barrier = context.Barrier(clients + 1)
            results: Queue[_ClientResult | str] = context.Queue()
            for k in range(clients):
                spec = _Spec(url, chain.url, opened[k::clients], calls, rounds)
                processes.append(context.Process(target=_client_process, args=(spec, barrier, results)))
            for process in processes:
                process.start()
            try:
                (unpaid_s, unpaid_cpu), (paid_s, paid_cpu) = _drive(url, barrier, rounds, profile, processes)
            except threading.BrokenBarrierError:
                raise RuntimeError(results.get(timeout=30)) from None
            got = [results.get(timeout=BARRIER_TIMEOUT) for _ in processes]
            failed = [r for r in got if isinstance(r, str)]
            if failed:
                raise RuntimeError(failed[0])
            done = [r for r in got if isinstance(r, _ClientResult)]
            for process in processes:
                process.join(30)
            server.stdin.close()
            report = server.stdout.read()
            if server.wait(timeout=60) != 0:
                raise RuntimeError(f"the B8 server exited with {server.returncode}")
        finally:
            for process in processes:
                if process.is_alive():
                    process.kill()
            if server.poll() is None:
                server.kill()
                server.wait()
        unpaid = _Phase(
            unpaid_s, [x for r in done for x in r.unpaid[0]], unpaid_cpu, sum(r.unpaid[1] for r in done)
        )
        paid = _Phase(paid_s, [x for r in done for x in r.paid[0]], paid_cpu, sum(r.paid[1] for r in done))
        by_payer = {index: counts for r in done for index, counts in r.payers.items()}
        # One batch redeem over the agent's ledger, as `motet agent redeem` would, then every channel checked.
        with Ledger(ledger_path) as ledger:
            agent = ChannelClient(chain, agent_account, ledger)
            redemptions = agent.redeem(ledger.unredeemed(agent.domain))
        lost = twice = 0
        for index, _, channel_id in opened:
            receipts = by_payer[index][0]
            redeemed = agent.channel(channel_id).redeemed
            lost += max(0, receipts - redeemed)
            twice += max(0, redeemed - receipts)
        return B8Result(
            paid=paid,
            unpaid=unpaid,
            payers=payers,
            calls_each=calls,
            client_processes=clients,
            redeemed_calls=sum(c for _, c in by_payer.values()),
            redeemed_wei=sum(r.paid for r in redemptions),
            receipts_wei=sum(r for r, _ in by_payer.values()),
            transactions=len(redemptions),
            lost_calls=lost // PRICE,
            paid_twice_calls=twice // PRICE,
            profile=report.strip(),
        )


def describe(result: B8Result) -> str:
    return (
        f"B8: {result.payers} payers in {result.client_processes} process(es) × {result.calls_each} calls: "
        f"paid {result.paid.describe()} vs unpaid {result.unpaid.describe()} = {result.ratio:.0%}; redeemed "
        f"{result.redeemed_calls:,} calls = {result.redeemed_wei:,} wei in {result.transactions} tx "
        f"{'=' if result.redeemed_wei == result.receipts_wei else '≠'} sum of receipts "
        f"{result.receipts_wei:,} wei; lost {result.lost_calls}, paid twice {result.paid_twice_calls}"
    )


def bench_b8_row(quick: bool = False) -> tuple[str, str, str, str, str]:
    """B8's row of `make bench` (id, what, result, target, verdict): `Row(*bench_b8_row(quick))`."""
    result = bench_b8(16, 20, rounds=2) if quick else bench_b8()
    print(describe(result))
    paid, unpaid = result.paid, result.unpaid
    return (
        "B8",
        f"one agent server process (anvil), {result.payers} concurrent payers with their own channels × "
        f"{result.calls_each} paid calls, Python-function capability; vs the same server's unpaid route",
        f"paid **{paid.rate:,.0f} calls/s** (p50 {paid.percentile(50):.0f} ms, p99 "
        f"{paid.percentile(99):.0f} ms) vs unpaid {unpaid.rate:,.0f} calls/s (p50 "
        f"{unpaid.percentile(50):.0f} ms, p99 "
        f"{unpaid.percentile(99):.0f} ms) = **{result.ratio:.0%}**; server CPU {paid.server_ms():.2f} vs "
        f"{unpaid.server_ms():.2f} ms per call, payers' CPU {paid.client_ms():.2f} vs "
        f"{unpaid.client_ms():.2f} ms; one redeem of {result.redeemed_calls:,} calls = "
        f"{result.redeemed_wei:,} wei "
        f"{'=' if result.redeemed_wei == result.receipts_wei else '≠'} sum of receipts; lost "
        f"{result.lost_calls}, paid twice {result.paid_twice_calls}",
        f"paid ≥ {TARGET:.0%} of unpaid; 0 lost, 0 paid twice",
        "met" if result.met else "not met",
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.b8_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="16 payers × 20 calls instead of 64 × 100")
    parser.add_argument("--payers", type=int, default=None)
    parser.add_argument("--calls", type=int, default=None)
    parser.add_argument(
        "--rounds", type=int, default=None, help=f"times the two phases alternate (default {ROUNDS}; 2 quick)"
    )
    parser.add_argument(
        "--clients", type=int, default=CLIENT_PROCESSES, help="processes the payers are spread over"
    )
    parser.add_argument(
        "--profile",
        nargs="?",
        const="wall",
        choices=["wall", "cpu"],
        help="print the server's cProfile of the paid phase: wall time (what holds the event loop, GIL waits "
        "included; the default) or each thread's CPU time (costly to take: use fewer payers, e.g. "
        "--payers 32 --calls 50)",
    )
    parser.add_argument(
        "--profile-out",
        type=Path,
        help="with --profile: also write the event loop's pstats to this file (the workers' to FILE.workers)",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rpc", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--ledger", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tab", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.rpc, args.key, args.ledger, args.tab, args.profile, args.profile_out))
        return
    # Stopped (SIGTERM): leave through the `finally` blocks, which stop the server, the payers and anvil.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    payers = args.payers or (16 if args.quick else 64)
    calls = args.calls or (20 if args.quick else 100)
    rounds = args.rounds or (2 if args.quick else ROUNDS)
    result = bench_b8(
        payers, calls, clients=args.clients, rounds=rounds, profile=args.profile, profile_out=args.profile_out
    )
    print(describe(result))
    if result.profile:
        print(result.profile)
    if args.profile is not None:
        print("(profiled: the server ran under cProfile in the paid phase, so these rates are lower)")


if __name__ == "__main__":
    # Run as `bench.b8_load`, not `__main__`, so the client processes (spawned) find what they run by name.
    from bench.b8_load import main as run

    with contextlib.suppress(KeyboardInterrupt):
        run()
