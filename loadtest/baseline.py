"""`python -m loadtest baseline`: the same N recipients sent by a straightforward smpplib script.

What a team writes first: smpplib's blocking client, one transceiver bind, against the same
simulator profile as e2e (own process, no TPS limit, receipts with no delay). Two variants:

* ``window 1``: stop-and-wait, send one submit_sm and read until its response;
* ``window 50``: a sender thread and a reader thread sharing the client, a semaphore of 50
  submits in flight (writes and sequence numbers under one lock).

Each variant is done when every submit_sm_resp and every receipt is in (the engine's
``--until-done`` waits for receipts too). The ratio e2e/baseline uses the e2e figure from
``OUT/e2e/results.json`` when there is one, else runs e2e with the same N first.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import smpplib.client
import smpplib.consts
import smpplib.smpp

from loadtest import plots
from loadtest.e2e import routes as e2e_routes
from loadtest.e2e import summarise
from loadtest.report import percentiles, read_results, scenario_dir, table, write_results
from loadtest.stack import PASSWORD, TEXT, run_stack, simulator_profile
from smsblast.segments import DEFAULT_MIX, synthetic_recipients
from smsblast.simulator.process import simulator_process

ACCOUNT = "telkomsel"
LATENCY_SAMPLE = 20_000


def destinations(n: int) -> Iterator[str]:
    """The normalised numbers of the same N synthetic recipients e2e sends to."""
    for key, _value in synthetic_recipients(n, DEFAULT_MIX, seed=1):
        assert key is not None
        yield key.decode("ascii")


class LockedClient(smpplib.client.Client):  # type: ignore[misc]
    """smpplib's client with writes and sequence numbers safe across two threads."""

    def __init__(self, *args: Any, nodelay: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lock = threading.RLock()
        self.nodelay = nodelay

    def _create_socket(self) -> socket.socket:
        sock: socket.socket = super()._create_socket()
        if self.nodelay:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def send_pdu(self, p: Any) -> bool:
        with self.lock:
            return bool(super().send_pdu(p))

    def next_sequence(self) -> int:
        with self.lock:
            return int(super().next_sequence())


@dataclass
class Tally:
    n: int
    resps: int = 0
    errors: int = 0
    receipts: int = 0
    sent_at: dict[int, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    last_resp: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)
    slots: threading.Semaphore | None = None  # released per response (threaded variant)

    def on_resp(self, pdu: Any) -> None:
        now = time.perf_counter()
        self.resps += 1
        self.last_resp = now
        started = self.sent_at.pop(pdu.sequence, None)
        if started is not None:
            self.latencies.append(now - started)
        if self.slots is not None:
            self.slots.release()
        self.check()

    def on_error(self, pdu: Any) -> None:
        self.errors += 1  # read_once still calls on_resp for an error submit_sm_resp

    def on_receipt(self, pdu: Any) -> int:
        self.receipts += 1
        self.check()
        return int(smpplib.consts.SMPP_ESME_ROK)

    def check(self) -> None:
        if self.resps >= self.n and self.receipts >= self.n - self.errors:
            self.done.set()


def connect(port: int, tally: Tally, nodelay: bool) -> LockedClient:
    client = LockedClient(
        "127.0.0.1", port, timeout=10, allow_unknown_opt_params=True, nodelay=nodelay
    )
    client.set_message_sent_handler(lambda pdu, **_: tally.on_resp(pdu))
    client.set_message_received_handler(lambda pdu, **_: tally.on_receipt(pdu))
    client.set_error_pdu_handler(tally.on_error)
    client.connect()
    client.bind_transceiver(system_id=ACCOUNT, password=PASSWORD)
    return client


def submit(client: LockedClient, tally: Tally, number: str, sample: bool) -> None:
    pdu = smpplib.smpp.make_pdu(
        "submit_sm",
        client=client,
        source_addr_ton=5,
        source_addr_npi=0,
        source_addr="KOMINFO",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr=number,
        short_message=TEXT.encode("ascii"),
        registered_delivery=1,
    )
    if sample:
        tally.sent_at[pdu.sequence] = time.perf_counter()
    client.send_pdu(pdu)


def stop_and_wait(port: int, n: int, window: int, nodelay: bool) -> Tally:
    tally = Tally(n)
    client = connect(port, tally, nodelay)
    every = max(1, n // LATENCY_SAMPLE)
    for i, number in enumerate(destinations(n)):
        submit(client, tally, number, i % every == 0)
        while tally.resps <= i:
            client.read_once()
    while not tally.done.is_set():
        client.read_once()
    client.unbind()
    client.disconnect()
    return tally


def threaded(port: int, n: int, window: int, nodelay: bool) -> Tally:
    slots = threading.Semaphore(window)
    tally = Tally(n, slots=slots)
    client = connect(port, tally, nodelay)

    def read() -> None:
        while not tally.done.is_set():
            client.read_once()

    reader = threading.Thread(target=read, name="smpplib-reader", daemon=True)
    reader.start()
    every = max(1, n // LATENCY_SAMPLE)
    for i, number in enumerate(destinations(n)):
        slots.acquire()
        submit(client, tally, number, i % every == 0)
    reader.join()
    client.unbind()
    client.disconnect()
    return tally


def run_variant(port: int, n: int, window: int, nodelay: bool) -> dict[str, Any]:
    started = time.perf_counter()
    run = stop_and_wait if window == 1 else threaded
    tally = run(port, n, window, nodelay)
    seconds = time.perf_counter() - started
    return {
        "variant": f"smpplib window {window}",
        "window": window,
        "tcp_nodelay": nodelay,
        "recipients": n,
        "seconds": round(seconds, 2),
        "msgs_per_s": round(n / seconds, 1),
        "submit_rate": round(n / (tally.last_resp - started), 1),
        "resp_errors": tally.errors,
        "receipts": tally.receipts,
        "submit_to_resp_s": percentiles(tally.latencies),
        "latencies": tally.latencies,
    }


def e2e_figure(out: str, n: int) -> dict[str, Any]:
    """The e2e median from OUT/e2e/results.json, else a fresh e2e run with ``n``."""
    found = read_results(out, "e2e")
    if found is not None:
        median = found["median"]
        return {"source": "OUT/e2e/results.json", **median}
    print(f"no {out}/e2e/results.json: running e2e with {n:,} recipients first", flush=True)
    route_list = e2e_routes(2, 200)
    result = summarise(run_stack(n, route_list, simulator_profile(route_list), mix=DEFAULT_MIX))
    return {"source": "run by baseline", **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest baseline", description=__doc__)
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--windows", default="1,50", help="variants: 1 = stop-and-wait")
    parser.add_argument(
        "--nagle",
        action="store_true",
        help="leave Nagle on (smpplib's default): stop-and-wait with receipts then waits "
        "for delayed ACKs",
    )
    parser.add_argument("--out", default="out", help="results go to OUT/baseline/")
    args = parser.parse_args(argv)
    e2e = e2e_figure(args.out, args.recipients)
    variants = []
    with tempfile.TemporaryDirectory() as tmp:
        route_list = e2e_routes(1, 1)
        with simulator_process(simulator_profile(route_list), tmp) as sim:
            for window in (int(w) for w in args.windows.split(",")):
                variant = run_variant(sim.port, args.recipients, window, not args.nagle)
                variant["e2e_ratio"] = round(e2e["recipients_per_s"] / variant["msgs_per_s"], 2)
                print(f"{variant['variant']}: {variant['msgs_per_s']:,.0f} msgs/s", flush=True)
                variants.append(variant)
            sim_totals = sim.stats()["totals"]
    rows = [
        {k: v[k] for k in ("variant", "recipients", "seconds", "msgs_per_s", "e2e_ratio")}
        for v in variants
    ]
    rows.append(
        {
            "variant": f"smsblast e2e ({e2e['source']})",
            "recipients": e2e["recipients"],
            "seconds": e2e["engine_seconds"],
            "msgs_per_s": e2e["recipients_per_s"],
            "e2e_ratio": 1.0,
        }
    )
    print(table(rows, list(rows[0])))
    out = scenario_dir(args.out, "baseline")
    plots.bar_plot(
        out / "throughput.png",
        [r["variant"].split(" (")[0] for r in rows],
        [r["msgs_per_s"] for r in rows],
        "smpplib script vs smsblast end to end (receipts on)",
        "recipients per second",
    )
    plots.latency_plot(
        out / "latency.png",
        variants[-1]["latencies"],
        f"{variants[-1]['variant']}",
        "submit_sm to submit_sm_resp",
    )
    for v in variants:
        del v["latencies"]
    write_results(
        args.out,
        "baseline",
        {
            "variants": variants,
            # startup_seconds: the engine's fixed cost (group join included), which weighs
            # on small N; absent from e2e results written before it was reported
            "e2e": {
                k: e2e.get(k)
                for k in (
                    "source",
                    "recipients",
                    "recipients_per_s",
                    "engine_seconds",
                    "startup_seconds",
                )
            },
            "table": rows,
            "sim_totals": sim_totals,
        },
        args,
        plots=["throughput.png", "latency.png"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
