"""`make bench`, the relay's part: the real `argobridge relay` process against the real Backstage test backend.

Not part of the test command and no timed assertion: it prints each figure beside its target (issue 14,
proof 6) and writes the same to JSON.

- ingress: notifications acknowledged (202) per second by a relay whose Backstage is away, so it only
  stores them (SQLite WAL, synchronous=FULL: each 202 follows a durable commit), from a concurrent client,
  each with its own scope so that nothing coalesces; and the 99th percentile of the acknowledgement time.
- catch-up: 1,000 pending notifications with distinct scopes, delivered once Backstage is back, against
  the raw rate of the same Backstage for bodies of the same shape (their own scopes, so that they create
  rather than update) POSTed directly at the relay's own delivery concurrency, in the same run, just
  before and just after the relay's turn.
- RSS: the relay process's resident memory (VmRSS of its pid: RelayProcess spawns it without a shell)
  with 10,000 notifications pending.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from argobridge_dev.backstage import BackstageServer
from argobridge_dev.controlplane import free_port
from argobridge_dev.relayproc import RelayProcess

# Never printed, never written to the JSON: the relay's log is checked for it at the end.
TOKEN = "relay-bench-token-3f9c2a7d61"
INGRESS_CONCURRENCY = 16
TARGET_INGRESS_PER_S = 500.0
TARGET_ACK_P99_MS = 50.0
TARGET_CATCHUP_SHARE = 0.80
TARGET_RSS_MB = 80.0


def delivery_concurrency() -> int:
    """How many POSTs the relay has in flight per bridge (1 for a relay that delivers one at a time)."""
    from argobridge.relay import server

    return int(getattr(server, "DELIVERY_CONCURRENCY", 1))


def notification(scope: str) -> dict[str, Any]:
    """A body shaped like the ones ArgoBridge's templates make, about 400 bytes."""
    return {
        "recipients": {"type": "entity", "entityRef": "user:default/alice"},
        "payload": {
            "title": f"shop-{scope}: sync succeeded",
            "description": "Application shop was synced to revision 4f2a9c1e by argocd-application-controller;"
            " health is Healthy. Resources: 12 synced, 0 out of sync, 0 pruned.",
            "link": f"https://argocd.example.com/applications/argocd/shop-{scope}",
            "severity": "normal",
            "topic": "argocd",
            "scope": f"argocd/shop-{scope}/on-sync-succeeded",
        },
    }


def bridge_entry(url: str) -> dict[str, Any]:
    return {"url": url, "token": TOKEN, "acceptTokens": [], "retryForSeconds": 86400.0, "attemptTimeoutSeconds": 10.0}


def closed_url() -> str:
    """A Backstage URL on a loopback port nothing listens on: the relay can only store."""
    return f"http://127.0.0.1:{free_port()}/api/notifications/notifications"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(share * len(ordered)) - 1))]


def proc_status_mb(pid: int, key: str) -> float:
    match = re.search(rf"^{key}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    assert match is not None, f"no {key} in /proc/{pid}/status"
    return int(match.group(1)) / 1024


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def ingest(url: str, scopes: list[str], concurrency: int) -> dict[str, Any]:
    """POST one notification per scope with `concurrency` requests in flight; acknowledgement times in s."""
    latencies: list[float] = []
    refused: dict[int, int] = {}
    queue = iter(scopes)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for scope in queue:
                data = json.dumps(notification(scope))
                started = time.perf_counter()
                async with session.post(url, data=data, headers=headers) as response:
                    await response.read()
                    if response.status == 202:
                        latencies.append(time.perf_counter() - started)
                    else:
                        refused[response.status] = refused.get(response.status, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return {"acknowledged": len(latencies), "refused": refused, "seconds": wall, "latencies": latencies}


async def post_raw(url: str, bodies: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    """The same kind of POSTs straight to Backstage, with the relay's own HTTP client and concurrency."""
    statuses: dict[int, int] = {}
    queue = iter(bodies)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as http:

        async def worker() -> None:
            for body in queue:
                response = await http.post(url, json=body, headers={"Authorization": f"Bearer {TOKEN}"})
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return {"posted": len(bodies), "statuses": statuses, "seconds": wall, "per_s": len(bodies) / wall}


def ingress_url(relay: RelayProcess, bridge: str) -> str:
    namespace, name = bridge.split(".", 1)
    return f"{relay.url}/v1/bridges/{namespace}/{name}/notifications"


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise TimeoutError(f"{what} not within {timeout:.0f}s")
        time.sleep(interval)


def final_results(entry: dict[str, Any]) -> int:
    return sum(int(entry.get(key, 0)) for key in ("delivered", "noRecipients", "rejected", "deadLettered"))


def run_ingress_and_rss(workdir: Path, requests: int, pending_for_rss: int) -> dict[str, Any]:
    """Figures (a) and (c) on one relay whose Backstage is away."""
    config = workdir / "relay-ingress.json"
    config.write_text(json.dumps({"bench.a": bridge_entry(closed_url())}))
    relay = RelayProcess(workdir / "relay-ingress", config_file=config).start()
    try:
        assert relay.proc is not None
        pid = relay.proc.pid
        assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[2:4] == [b"argobridge.commands.cli", b"relay"]
        url = ingress_url(relay, "bench.a")
        rss_idle = proc_status_mb(pid, "VmRSS")
        asyncio.run(ingest(url, [f"warm-{i}" for i in range(300)], INGRESS_CONCURRENCY))
        cpu_before = cpu_seconds(pid)
        measured = asyncio.run(ingest(url, [f"a-{i}" for i in range(requests)], INGRESS_CONCURRENCY))
        relay_cpu = cpu_seconds(pid) - cpu_before
        latencies = measured.pop("latencies")
        figures: dict[str, Any] = {
            "requests": requests,
            "concurrency": INGRESS_CONCURRENCY,
            **measured,
            "per_s": measured["acknowledged"] / measured["seconds"],
            "ack_p50_ms": percentile(latencies, 0.50) * 1000,
            "ack_p99_ms": percentile(latencies, 0.99) * 1000,
            "ack_max_ms": max(latencies) * 1000,
            "relay_cpu_ms_per_ack": relay_cpu * 1000 / max(1, measured["acknowledged"]),
            "load_average_1m": os.getloadavg()[0],
        }
        already = relay.bridge_status("bench", "a").get("pending", 0)
        more = max(0, pending_for_rss - already)
        asyncio.run(ingest(url, [f"c-{i}" for i in range(more)], INGRESS_CONCURRENCY))
        wait_for(lambda: relay.bridge_status("bench", "a").get("pending", 0) >= pending_for_rss, 60, "pending")
        # Let the delivery loop try Backstage and the status port be read a few times with everything pending.
        for _ in range(10):
            relay.status()
            time.sleep(0.5)
        figures["rss"] = {
            "pending": relay.bridge_status("bench", "a")["pending"],
            "rss_idle_mb": rss_idle,
            "rss_mb": proc_status_mb(pid, "VmRSS"),
            "rss_peak_mb": proc_status_mb(pid, "VmHWM"),
        }
        return figures
    finally:
        relay.stop()
        assert TOKEN not in relay.log(), "the relay logged its token"


def run_catchup(workdir: Path, pending: int) -> dict[str, Any]:
    """Figure (b): Backstage runs; the relay's bridge points away while it stores, then to Backstage.

    Backstage is up from the start (its start-up is not what is measured, and a backend that has not
    loaded its catalog yet would resolve no recipients): "Backstage returns" is the relay's config
    pointing its bridge at it, which the relay re-reads every 2 s.
    """
    concurrency = delivery_concurrency()
    with BackstageServer(token=TOKEN) as backstage:
        backstage_url = f"{backstage.url}/api/notifications/notifications"
        config = workdir / "relay-catchup.json"
        config.write_text(json.dumps({"bench.b": bridge_entry(closed_url())}))
        relay = RelayProcess(workdir / "relay-catchup", config_file=config).start()
        try:
            stored = asyncio.run(ingest(ingress_url(relay, "bench.b"), [f"b-{i}" for i in range(pending)], 16))
            assert stored["acknowledged"] == pending, stored["refused"]
            wait_for(lambda: relay.bridge_status("bench", "b").get("pending", 0) == pending, 60, "pending")
            asyncio.run(post_raw(backstage_url, [notification(f"warm-{i}") for i in range(100)], concurrency))
            raw_before = asyncio.run(
                post_raw(backstage_url, [notification(f"raw1-{i}") for i in range(pending)], concurrency)
            )
            relay.write_config({"bench.b": bridge_entry(backstage_url)})
            returned = time.perf_counter()
            samples: list[tuple[float, int]] = []
            with httpx.Client(timeout=5.0) as http:
                end = returned + 600
                while time.perf_counter() < end:
                    entry = http.get(f"{relay.status_url}/v1/status").json()["bridges"].get("bench/b", {})
                    samples.append((time.perf_counter(), final_results(entry)))
                    if samples[-1][1] >= pending:
                        break
                    time.sleep(0.02)
            raw_after = asyncio.run(
                post_raw(backstage_url, [notification(f"raw2-{i}") for i in range(pending)], concurrency)
            )
            entry = relay.bridge_status("bench", "b")
        finally:
            relay.stop()
            assert TOKEN not in relay.log(), "the relay logged its token"
    moving = [(t, n) for t, n in samples if n > 0] or [(float("nan"), 0)]
    (t_first, n_first), (t_last, n_last) = moving[0], moving[-1]
    rate = (n_last - n_first) / (t_last - t_first) if t_last > t_first else float("nan")
    # Backstage slows down as its notifications table grows (about half the rate after 3,000 more), so
    # the raw rate is taken just before and just after the relay's turn and averaged: the relay's 1,000
    # land between the two, on a table of the size in between.
    raw = (raw_before["per_s"] + raw_after["per_s"]) / 2
    return {
        "pending": pending,
        "concurrency": concurrency,
        "delivered": entry.get("delivered"),
        "no_recipients": entry.get("noRecipients"),
        "rejected": entry.get("rejected"),
        "dead_lettered": entry.get("deadLettered"),
        "still_pending": entry.get("pending"),
        "finished_in_time": bool(samples) and samples[-1][1] >= pending,
        "return_to_first_delivery_s": t_first - returned,
        "return_to_all_delivered_s": t_last - returned,
        "relay_per_s": rate,
        "raw_before": raw_before,
        "raw_after": raw_after,
        "raw_per_s": raw,
        "share_of_raw": rate / raw,
    }


def rows(figures: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    out: list[tuple[str, str, str, bool | None]] = []
    ingress = figures.get("ingress")
    if ingress:
        out.append(
            (
                f"ingress acknowledged/s (durable, {ingress['concurrency']} concurrent)",
                f"{ingress['per_s']:.0f}",
                f">= {TARGET_INGRESS_PER_S:.0f}",
                ingress["per_s"] >= TARGET_INGRESS_PER_S and not ingress["refused"],
            )
        )
        out.append(
            (
                "ingress acknowledgement p99 ms",
                f"{ingress['ack_p99_ms']:.1f} (p50 {ingress['ack_p50_ms']:.1f})",
                f"< {TARGET_ACK_P99_MS:.0f}",
                ingress["ack_p99_ms"] < TARGET_ACK_P99_MS,
            )
        )
        rss = ingress["rss"]
        out.append(
            (
                f"relay RSS MB with {rss['pending']:,} pending",
                f"{rss['rss_mb']:.1f} (peak {rss['rss_peak_mb']:.1f}, idle {rss['rss_idle_mb']:.1f})",
                f"< {TARGET_RSS_MB:.0f}",
                rss["rss_mb"] < TARGET_RSS_MB,
            )
        )
    catchup = figures.get("catchup")
    if catchup:
        clean = catchup["delivered"] == catchup["pending"] and catchup["finished_in_time"]
        out.append(
            (
                f"catch-up of {catchup['pending']:,}: relay/s vs raw Backstage POST/s ({catchup['concurrency']} conc.)",
                f"{catchup['relay_per_s']:.0f} vs {catchup['raw_per_s']:.0f} = {catchup['share_of_raw']:.0%}"
                f" (raw before {catchup['raw_before']['per_s']:.0f}, after {catchup['raw_after']['per_s']:.0f})",
                f">= {TARGET_CATCHUP_SHARE:.0%}",
                catchup["share_of_raw"] >= TARGET_CATCHUP_SHARE and clean,
            )
        )
        out.append(
            (
                "catch-up: config points at Backstage -> first / last delivery s",
                f"{catchup['return_to_first_delivery_s']:.1f} / {catchup['return_to_all_delivered_s']:.1f}",
                "(shown)",
                None,
            )
        )
    return out


def table(figures: dict[str, Any]) -> str:
    lines = ["| figure | measured | target | ok |", "|---|---|---|---|"]
    for figure, measured, target, ok in rows(figures):
        lines.append(f"| {figure} | {measured} | {target} | {'-' if ok is None else 'yes' if ok else 'NO'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default="build/bench-relay.json", help="where to write the figures")
    parser.add_argument("--requests", type=int, default=5000, help="measured ingress requests")
    parser.add_argument("--rss-pending", type=int, default=10_000, help="pending notifications for the RSS figure")
    parser.add_argument("--catchup", type=int, default=1000, help="pending notifications to catch up")
    parser.add_argument("--skip-catchup", action="store_true", help="only ingress and RSS (no Backstage needed)")
    args = parser.parse_args()
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="argobridge-relay-bench-"))
    figures: dict[str, Any] = {
        "machine": f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start",
        "ingress": run_ingress_and_rss(workdir, args.requests, args.rss_pending),
    }
    print(json.dumps(figures["ingress"]), flush=True)
    if not args.skip_catchup:
        figures["catchup"] = run_catchup(workdir, args.catchup)
        print(json.dumps(figures["catchup"]), flush=True)
    out.write_text(json.dumps(figures, indent=2))
    print(f"\nArgoBridge relay benchmark on {figures['machine']} (work files in {workdir})\n")
    print(table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
