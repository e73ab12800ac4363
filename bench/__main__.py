"""`make bench`: motet's benchmarks as side-by-side ratios (see PERFORMANCE.md in the design notes).

Prints each figure and writes docs/performance.md. Timings are taken in one run on one machine; only the
ratios are meant to travel.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from coincurve import PrivateKey
from eth_account import Account
from eth_account.messages import encode_typed_data

from bench.b8_load import bench_b8_row
from bench.b9_trust import bench_b9
from motet.chain import Chain
from motet.payments import ChannelClient, ChannelDomain, Ledger, VoucherSigner, VoucherVerifier

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    id: str
    what: str
    result: str
    target: str
    verdict: str


def _rate(fn: Callable[[int], object], n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - start)


def bench_b3(n_fast: int, n_ref: int) -> Row:
    key = "0x" + "42" * 32
    domain = ChannelDomain(31337, "0x" + "ab" * 20)
    signer, verifier = VoucherSigner(key, domain), VoucherVerifier(domain)
    account = Account.from_key(key)

    def fast(i: int) -> None:
        verifier.verify(signer.sign(7, i + 1), signer.address)

    template = signer.sign(7, 1).typed_data()

    def reference(i: int) -> None:
        message = encode_typed_data(
            full_message={**template, "message": {"channelId": 7, "cumulativeAmount": i + 1}}
        )
        signed = account.sign_message(message)
        assert Account.recover_message(message, signature=signed.signature) == account.address

    # The floor: libsecp256k1 alone (sign one digest, verify it against a known key), no Python around it.
    private = PrivateKey(bytes.fromhex(key[2:]))
    digest = domain.voucher_digest(7, 1)

    def floor(_: int) -> None:
        signature = private.sign(digest, hasher=None)
        assert private.public_key.verify(signature, digest, hasher=None)

    fast(0)
    reference(0)
    fast_rate, ref_rate, floor_rate = _rate(fast, n_fast), _rate(reference, n_ref), _rate(floor, n_fast)
    ratio = fast_rate / ref_rate
    print(
        f"B3 voucher sign+verify: fast {fast_rate:,.0f}/s, eth-account {ref_rate:,.0f}/s, ratio {ratio:.1f}x "
        f"(libsecp256k1 alone: {floor_rate:,.0f}/s)"
    )
    ok = fast_rate >= 10_000 and ratio >= 10
    return Row(
        "B3",
        "voucher sign+verify pairs/s, one core",
        f"{fast_rate:,.0f}/s vs eth-account {ref_rate:,.0f}/s = **{ratio:.1f}×**; libsecp256k1 alone "
        f"(bare sign + verify, no encoding) {floor_rate:,.0f}/s: the fast path runs at "
        f"{fast_rate / floor_rate:.0%} of the curve library's own speed",
        "≥ 10,000/s and ≥ 10×",
        "met" if ok else "not met",
    )


def bench_b4(counts: list[int]) -> Row:
    chain = Chain.embedded()
    payer_account, payee_account = chain.accounts[0], chain.accounts[1]
    transfer_gas = int(chain.transfer(chain.accounts[2].address, 1, sender=payer_account)["gasUsed"])
    parts = []
    per_call_at_max = 0.0
    for n in counts:
        payer = ChannelClient(chain, payer_account, Ledger())
        payee = ChannelClient(chain, payee_account, Ledger())
        channel = payer.open(payee.address, 1_000 * n)
        assert chain.last_receipt is not None
        open_gas = int(chain.last_receipt["gasUsed"])
        for _ in range(n):
            payee.receive(payer.pay(channel.channel_id, 1_000))
        (redemption,) = payee.redeem()
        per_call = (open_gas + redemption.gas_used) / n
        per_call_at_max = per_call
        parts.append(f"N={n}: {per_call:,.0f}")
        print(
            f"B4 N={n:>5}: open {open_gas} + redeem {redemption.gas_used} = {per_call:,.1f} gas per paid call "
            f"(one transfer per call: {transfer_gas}; {transfer_gas / per_call:,.1f}x cheaper)"
        )
    return Row(
        "B4",
        "gas per paid call (open + one redeem) / N, native coin",
        "; ".join(parts) + f" — vs {transfer_gas:,} for one transfer per call "
        f"(**{transfer_gas / per_call_at_max:,.0f}× less** at N={counts[-1]})",
        "≤ 200 gas at N = 1,000",
        "met" if per_call_at_max <= 200 else "not met",
    )


def bench_b5_row() -> Row:
    from bench.b5_runtime import TARGET, bench_b5

    runtime_tps, raw_tps, ratio = bench_b5()
    return Row(
        "B5",
        "LlamaCppRuntime tokens/s ÷ raw llama_cpp.Llama, SmolLM2-135M Q4_1, same prompt and threads",
        f"{runtime_tps:.1f} vs {raw_tps:.1f} tokens/s = **{ratio:.3f}**",
        f"≥ {TARGET}",
        "met" if ratio >= TARGET else "not met",
    )


def bench_b1_row(runs: int) -> Row:
    from bench.b1_overhead import TARGET, bench_b1

    ours, theirs, overhead, ours_tokens, raw_tokens = bench_b1(runs)
    return Row(
        "B1",
        "5-node graph (3 parallel) of built-in agents on SmolLM2 over HTTP, registry-resolved and paid per "
        "call, vs the same prompts straight to llama_cpp.Llama (1 thread)",
        f"{ours:.2f} s vs {theirs:.2f} s per run ({ours_tokens} vs {raw_tokens} tokens): **{overhead:+.1%}**",
        f"≤ {TARGET:.0%}",
        "met" if overhead <= TARGET else "not met",
    )


def bench_b2_row(runs: int) -> Row:
    from bench.b_composer import B2_TARGET, bench_b2

    ours, bare = bench_b2(runs)
    return Row(
        "B2",
        "paid node-steps/s, 5-node graph (1 → 3 parallel → 1) of Python-function agents over HTTP on "
        "127.0.0.1, each call signed by the payer and checked, its receipt checked and voucher signed, persisted "
        "and handed over on the next call; vs bare LangGraph on the same graph",
        f"**{ours:,.0f}** paid node-steps/s vs {bare:,.0f} bare LangGraph node-steps/s",
        f"≥ {B2_TARGET:,} paid node-steps/s",
        "met" if ours >= B2_TARGET else "not met",
    )


def bench_b6_row(repetitions: int) -> Row:
    from bench.b_composer import B6_TARGET_MS, bench_b6

    first, best, plan_ms = bench_b6(repetitions)
    return Row(
        "B6",
        "compile() of a 20-node graph against 100 registered agents (5 per capability); plan() of a "
        "20-step goal over the same offers",
        f"compile **{first:.1f} ms** first, {best:.1f} ms again; plan {plan_ms:.1f} ms",
        f"≤ {B6_TARGET_MS:.0f} ms",
        "met" if first + plan_ms <= B6_TARGET_MS else "not met",
    )


def lifecycle(chain: Chain, vouchers: int) -> float:
    """Open, pay `vouchers` calls, redeem, close, wait out the challenge period, settle; seconds taken."""
    start = time.perf_counter()
    payer = ChannelClient(chain, chain.accounts[3], Ledger())
    payee = ChannelClient(chain, chain.accounts[4], Ledger())
    channel = payer.open(payee.address, 10 * vouchers)
    for _ in range(vouchers):
        payee.receive(payer.pay(channel.channel_id, 10))
    payee.redeem()
    payer.close(channel.channel_id)
    chain.advance_time(chain.settings.challenge_period)
    payer.settle(channel.channel_id)
    return time.perf_counter() - start


def bench_b7(vouchers: int) -> Row:
    embedded = Chain.embedded()
    embedded.contract("PaymentChannels")
    t_embedded = lifecycle(embedded, vouchers)
    with Chain.anvil() as node:
        node.contract("PaymentChannels")
        t_anvil = lifecycle(node, vouchers)
    print(
        f"B7 lifecycle with {vouchers} vouchers: embedded {t_embedded:.2f}s, anvil {t_anvil:.2f}s, "
        f"ratio {t_embedded / t_anvil:.2f}"
    )
    return Row(
        "B7",
        f"one channel lifecycle with {vouchers:,} vouchers",
        f"embedded py-evm {t_embedded:.2f} s, anvil {t_anvil:.2f} s (embedded/anvil = {t_embedded / t_anvil:.2f})",
        "report both",
        "reported",
    )


def bench_b9_headline() -> Row:
    """B9's second half: the published economics' simulation (`python -m motet.trust.economics`)."""
    from motet.trust.economics import headline, simulate

    analysis = simulate()
    line = headline(analysis=analysis)
    cheating_loses = analysis.cheating_loses()
    print(f"B9 economics: {line}; cheating loses at every rate: {cheating_loses}")
    return Row(
        "B9",
        "at the published defaults: a cheater faking ≥ 10 % of its calls caught within 1,000 calls; cheating's "
        "expected value at cheat rates 1–100 % (Monte-Carlo, `python -m motet.trust.economics`)",
        f"caught with probability **{line.catch_probability:.2%}** (simulated {line.simulated_catch_probability:.2%})"
        f"; cheating {'loses' if cheating_loses else 'PAYS'} at every rate",
        "≥ 99 %; negative at every rate",
        "met" if line.holds and cheating_loses else "not met",
    )


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def write_report(rows: list[Row], path: Path, profile: str | None = None) -> None:
    lines = [
        "# Performance",
        "",
        "Written by `make bench` (`python -m bench`); targets from the design notes' PERFORMANCE.md. Every",
        "figure is a ratio measured side by side in one run, because these machines are shared and noisy.",
        "",
        f"Machine: {_machine()}. Measured {time.strftime('%Y-%m-%d')}.",
        "GPU offload and tokens/s on a GPU machine are recorded in [operations](operations.md#gpu).",
        "",
        "| id | what | result | target | verdict |",
        "|---|---|---|---|---|",
        *[f"| {r.id} | {r.what} | {r.result} | {r.target} | {r.verdict} |" for r in rows],
        "",
        "## How each is measured",
        "",
        "- **B3**: `VoucherSigner.sign` + `VoucherVerifier.verify` (cached public key after the first voucher) in a",
        "  loop on one core, against eth-account's `encode_typed_data` + `sign_message` + `recover_message` on the",
        "  same typed data.",
        "- **B4**: on the embedded chain, for each N a fresh channel is opened, N vouchers are signed and",
        "  received, and the last one is redeemed; (open gas + redeem gas) / N against the 21,000 gas of one",
        "  native transfer per call.",
        "- **B5**: `bench/b5_runtime.py`: the same prompt, 64 greedy tokens, through `LlamaCppRuntime.complete`",
        "  and straight through `llama_cpp.Llama.create_chat_completion`, alternating, after a warm-up.",
        "- **B1**: `bench/b1_overhead.py`: a warm-up run opens the channels; then motet's run (agents over",
        "  HTTP, receipts, vouchers, LangGraph; settlement excluded, see B4) and the raw run (the same",
        "  messages, JSON grammars, max_tokens, greedy decoding and seeds, straight into its own `Llama`)",
        "  alternate; equal completion-token counts show both did the same model work.",
        "- **B2**: `bench/b_composer.py`: the graph runs 100 times after a warm-up run that opens the channels,",
        "  without settlement (settlement is one batched transaction per run, measured in B4); bare LangGraph",
        "  runs the same topology with nodes that return at once. Each paid step is one HTTP request (`/invoke`,",
        "  carrying the voucher for the agent's previous call), a call signed by the payer and verified by the",
        "  agent, a receipt signed and verified, a voucher signed and verified, and six SQLite commits (payer:",
        "  `calling`, `delivered`, the voucher, `signed`, `paid`; agent: the voucher, the delivery; see",
        "  [protocol](protocol.md#payment-on-delivery-one-round-trip-per-call)). Where the time goes is below.",
        "- **B6**: `bench/b_composer.py`: the first compile in the process (cards parsed and their schemas",
        "  checked) and a repeat (parsed cards are cached by their `data:` URI); registry index in SQLite.",
        "- **B7**: open, 1,000 vouchers paid and verified, a batched redeem, close, the challenge period moved",
        "  past, settle — wall time on the in-process py-evm chain and on anvil (started on 127.0.0.1).",
        "- **B9**: `bench/b9_trust.py`: verifiable calls (summarize, keywords, sentiment) served by one",
        "  SmolLM2 runtime and every answer checked by a `Checker` on another; process CPU time around each",
        "  call and each check; the expected cost of sampling is p × CPU(checks) ÷ CPU(calls). The second row",
        "  is `motet.trust.economics`' seeded simulation at the published defaults (docs/trust.md).",
        "",
    ]
    if profile is not None:
        lines += [
            "## Where B2's time goes",
            "",
            "`python -m bench.b_composer --profile` prints it: cProfile around B2's timed runs only. Before issue 17",
            "(kept in `bench/b2_profile_before.txt`) the time went to the HTTP client and server of two requests",
            "per paid call; now one request carries the call and the previous call's voucher, on aiohttp and",
            "uvicorn's httptools parser, and the reads of the ledger, the tab and the schemas are served from",
            "memory. What is left is spread thin: the three signatures and three recoveries of a paid call",
            "(libsecp256k1), the SQLite commits each step needs before the next, JSON, jsonschema checks of",
            "untrusted outputs, LangGraph's own step, and the event loop's task switches between the payer and",
            "five servers that share one process and one core here.",
            "",
            "### Before",
            "",
            "```",
            (ROOT / "bench" / "b2_profile_before.txt").read_text().rstrip(),
            "```",
            "",
            "### Now",
            "",
            "```",
            profile.rstrip(),
            "```",
            "",
        ]
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/performance.md alone")
    args = parser.parse_args()
    rows = [
        bench_b3(2_000 if args.quick else 20_000, 200 if args.quick else 1_000),
        bench_b4([1, 10, 100] if args.quick else [1, 10, 100, 1_000]),
        bench_b5_row(),
        bench_b1_row(2 if args.quick else 5),
        bench_b2_row(20 if args.quick else 100),
        bench_b6_row(3 if args.quick else 5),
        bench_b7(100 if args.quick else 1_000),
        Row(*bench_b8_row(args.quick)),
        bench_b9(6 if args.quick else 24),
        bench_b9_headline(),
    ]
    from bench.b_composer import profile_b2

    profile = profile_b2(20 if args.quick else 100)
    print(profile)
    if not args.no_write:
        write_report(rows, ROOT / "docs" / "performance.md", profile)
        print(f"wrote {ROOT / 'docs' / 'performance.md'}")


if __name__ == "__main__":
    main()
