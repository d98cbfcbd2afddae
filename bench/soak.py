"""Soak: minutes of steady mixed load (bench/load.py's driver: chat with audio, chat streams, short, streamed
and 2-minute transcriptions) against `lalm serve --engine vllm` with its own vLLM child on the tiny model,
all on 127.0.0.1; then vLLM killed once under load.

    .venv/bin/python bench/soak.py                       # 10 minutes of load, then the kill
    .venv/bin/python bench/soak.py --minutes 2 --round-seconds 30 --no-kill
    .venv/bin/python bench/soak.py --quick --model DIR --upstream URL    # 2 rounds of 4 s, a running vLLM

Steady part: the load runs in rounds (`--round-seconds` each; the first is the warm-up). After each round,
with its connections closed, the gateway process's own resident memory (RSS, vLLM not included) and open
file descriptors are sampled, so the figures show whether memory keeps growing from round to round (a leak)
or plateaus (memory the allocator keeps for reuse). Reported: RSS after warm-up vs at the end (goal: under
5 % growth), peak RSS, fds at the start and end (goal: flat).

Kill part: with the load running, the gateway's vLLM child (the API server process, as a crash of it would)
gets SIGKILL. Every request in flight must end with a clean error (a 502/503 with OpenAI's error body, or an
error event in a stream) or complete; /health must answer 503 and then 200 once the supervisor has
restarted vLLM; a load round after that must have no errors.

With `--upstream` the gateway uses a vLLM server that is already running instead of its own child: the
steady part and the shutdown check run, the kill part does not (that vLLM is not the gateway's to kill).

After the gateway's shutdown: no process of its tree (every descendant seen during the run, by pid and start
time) and no process in any of its vLLM process groups may remain. Processes are found by pid and process
group only, never by name: other people's vLLM servers run on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.load import LoadResult, run_load  # noqa: E402
from bench.quick import parse_args  # noqa: E402

# A driver error string that is a clean failure: a 502/503 with OpenAI's error body, or a stream whose
# error event names the upstream (bench/load.py's `_one` writes "<kind>: <status> <body>").
_CLEAN_STATUS = re.compile(r'^\w+: (502|503) \{"error": ?\{"message"')
_CLEAN_EVENT = re.compile(r'^\w+: error event in the stream: .*"code": ?"upstream_\w+"', re.S)


def clean_failure(error: str) -> bool:
    """Whether a bench/load.py error string is a clean error (OpenAI body, upstream code) rather than a
    dropped connection, a timeout, a 500 or a malformed answer."""
    return bool(_CLEAN_STATUS.match(error) or _CLEAN_EVENT.match(error))


class ProcessTree:
    """Every descendant of a process seen while watching it: pid -> (start time, process group). Start times
    tell a pid reused by an unrelated process from one of ours."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.seen: dict[int, tuple[float, int]] = {}
        self.own_group = os.getpgrp()
        self.look()

    def look(self) -> None:
        try:
            children = self.root.children(recursive=True)
        except psutil.NoSuchProcess:
            return
        for child in children:
            try:
                self.seen.setdefault(child.pid, (child.create_time(), os.getpgid(child.pid)))
            except (psutil.NoSuchProcess, ProcessLookupError):
                continue

    def groups(self) -> set[int]:
        """The process groups of the descendants, not the caller's own (the gateway shares it)."""
        return {g for _, g in self.seen.values()} - {self.own_group}

    def leftovers(self) -> list[str]:
        """Descendants still running (zombies included), and any process in one of their groups."""
        left = []
        for pid, (started, _) in self.seen.items():
            try:
                p = psutil.Process(pid)
                if p.create_time() == started:
                    left.append(f"pid {pid} ({p.status()})")
            except psutil.NoSuchProcess:
                continue
        groups = self.groups()
        for p in psutil.process_iter():
            try:
                if p.pid not in self.seen and os.getpgid(p.pid) in groups:
                    left.append(f"pid {p.pid} in group {os.getpgid(p.pid)}")
            except (psutil.NoSuchProcess, ProcessLookupError):
                continue
        return left


@dataclass
class Sample:
    """One reading of the gateway process: seconds since the start, RSS (MiB), open file descriptors."""

    t: float
    rss_mb: float
    fds: int


@dataclass
class GatewayWatch:
    """Readings of the gateway process alone (its vLLM child's memory is vLLM's business), and its tree."""

    pid: int
    samples: list[Sample] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.proc = psutil.Process(self.pid)
        self.tree = ProcessTree(self.pid)
        self.peak_mb = 0.0

    def read(self) -> Sample:
        s = Sample(time.monotonic() - self.started, self.proc.memory_info().rss / 2**20, self.proc.num_fds())
        self.peak_mb = max(self.peak_mb, s.rss_mb)
        return s

    def tick(self) -> None:
        self.peak_mb = max(self.peak_mb, self.proc.memory_info().rss / 2**20)
        self.tree.look()

    def settle(self, seconds: float = 6.0) -> Sample:
        """A reading after the connections of a round had `seconds` to close (the gateway drops idle
        connections to vLLM after 2 s; read sooner, they count as descriptors)."""
        time.sleep(seconds)
        s = self.read()
        self.samples.append(s)
        return s


def vllm_child(gateway_pid: int) -> psutil.Process:
    """The gateway's vLLM server: its child that leads a session of its own (lalm starts it so)."""
    for child in psutil.Process(gateway_pid).children():
        try:
            if os.getpgid(child.pid) == child.pid and child.status() != psutil.STATUS_ZOMBIE:
                return child
        except (psutil.NoSuchProcess, ProcessLookupError):
            continue
    raise RuntimeError("the gateway has no vLLM child process")


def in_flight(url: str) -> float:
    """Requests the gateway is serving now (the /metrics request counts itself)."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return float(re.search(r"^lalm_requests_in_flight (\S+)$", text, re.M).group(1))


def load_round(url: str, watch: GatewayWatch, *, clients: int, seconds: float, requests: int = 10**9) -> LoadResult:
    return asyncio.run(run_load(url, clients=clients, requests=requests, max_seconds=seconds, on_tick=watch.tick))


def statuses(result: LoadResult) -> str:
    total: Counter = Counter()
    for counts in result.statuses.values():
        total.update(counts)
    return ", ".join(f"{s}: {n}" for s, n in sorted(total.items()))


@dataclass
class KillOutcome:
    """What the kill under load did."""

    in_flight_at_kill: float
    during: LoadResult
    unclean: list[str]
    health: list[tuple[float, int]]  # (seconds after the kill, /health status; 0: no answer)
    back_after_s: float | None
    after: LoadResult | None


def kill_under_load(url: str, watch: GatewayWatch, *, clients: int, load_seconds: float,
                    kill_after_s: float, restart_timeout_s: float = 600) -> KillOutcome:
    """Run load for `load_seconds`, SIGKILL the vLLM child `kill_after_s` into it, poll /health until it is
    200 again, then run a round of load half as long that must have no errors. Waits first until vLLM is
    healthy, so the kill hits a serving vLLM even if the steady part ended with one restarting."""
    deadline = time.monotonic() + restart_timeout_s
    while httpx.get(f"{url}/health", timeout=30).status_code != 200 and time.monotonic() < deadline:
        time.sleep(1)
    child = vllm_child(watch.pid)
    health: list[tuple[float, int]] = []
    killed_at: list[float] = []
    flying: list[float] = []
    done = threading.Event()

    def killer() -> None:
        time.sleep(kill_after_s)
        flying.append(in_flight(url) - 1)
        os.kill(child.pid, signal.SIGKILL)
        killed_at.append(time.monotonic())
        while not done.is_set():
            try:
                code = httpx.get(f"{url}/health", timeout=5).status_code
            except httpx.HTTPError:
                code = 0
            health.append((time.monotonic() - killed_at[0], code))
            if code == 200 and any(c == 503 for _, c in health):
                return
            done.wait(0.5)

    thread = threading.Thread(target=killer)
    thread.start()
    during = load_round(url, watch, clients=clients, seconds=load_seconds)
    thread.join(restart_timeout_s)
    done.set()
    unclean = [e for e in during.errors if not clean_failure(e)]
    back = next((t for t, c in health if c == 200 and any(c2 == 503 for _, c2 in health)), None)
    after = load_round(url, watch, clients=clients, seconds=load_seconds / 2) if back is not None else None
    return KillOutcome(flying[0] if flying else float("nan"), during, unclean, health, back, after)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="Checkpoint folder (default: a tiny random one built here).")
    parser.add_argument("--upstream", help="A vLLM server already running (serving --model as 'tiny') instead of "
                                           "the gateway's own child; no kill part.")
    parser.add_argument("--minutes", type=float, default=10.0, help="Steady load, warm-up round included.")
    parser.add_argument("--round-seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-concurrency", type=int, default=64, help="The gateway's cap (429 above it).")
    parser.add_argument("--no-kill", action="store_true", help="Skip killing vLLM under load.")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parse_args(parser, {"minutes": 8 / 60, "round_seconds": 4.0, "clients": 4})
    if args.upstream and not args.model:
        parser.error("--upstream needs --model: the checkpoint that server serves")

    from bench.servers import start_gateway
    from lalm.modeling.tiny import make_tiny

    failures: list[str] = []
    figures: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = args.model or str(make_tiny(work / "tiny"))
        env = {"LALM_DEFAULT_MAX_TOKENS": "8", "LALM_WINDOW_MAX_TOKENS": "8", "LALM_VLLM_LOG": str(work / "vllm.log")}
        print(f"starting lalm serve {f'in front of {args.upstream}' if args.upstream else 'with its own vLLM child'}"
              " ...", flush=True)
        gateway = start_gateway(args.upstream, model, work / "gateway.log", "--max-concurrency",
                                str(args.max_concurrency), env=env, managed_vllm=not args.upstream)
        url = gateway.url
        watch = GatewayWatch(gateway.pid)
        try:
            start = watch.settle(0)
            vllm = f"vLLM at {args.upstream}" if args.upstream else f"vLLM pid {vllm_child(gateway.pid).pid}"
            print(f"gateway pid {gateway.pid}, {vllm}; at start: RSS {start.rss_mb:.0f} MiB, {start.fds} fds",
                  flush=True)
            rounds = max(2, round(args.minutes * 60 / args.round_seconds))
            errors = 0
            for i in range(rounds):
                result = load_round(url, watch, clients=args.clients, seconds=args.round_seconds)
                s = watch.settle()
                errors += len(result.errors)
                print(f"round {i + 1}/{rounds}{' (warm-up)' if i == 0 else ''}: {result.served} served "
                      f"({statuses(result)}), {len(result.errors)} errors; p50 {result.percentile(None, 0.5):.2f} s "
                      f"p99 {result.percentile(None, 0.99):.2f} s; RSS {s.rss_mb:.0f} MiB (peak so far "
                      f"{watch.peak_mb:.0f}), {s.fds} fds", flush=True)
                for e in result.errors[:5]:
                    print(f"  {e}")
            warm, end = watch.samples[1], watch.samples[-1]
            growth = (end.rss_mb - warm.rss_mb) / warm.rss_mb * 100
            figures["steady"] = {"rounds": rounds, "round_seconds": args.round_seconds, "clients": args.clients,
                                 "errors": errors, "rss_start_mb": start.rss_mb, "rss_after_warmup_mb": warm.rss_mb,
                                 "rss_end_mb": end.rss_mb, "rss_peak_mb": watch.peak_mb, "rss_growth_pct": growth,
                                 "fds_start": start.fds, "fds_after_warmup": warm.fds, "fds_end": end.fds,
                                 "rss_by_round_mb": [round(s.rss_mb, 1) for s in watch.samples[1:]]}
            print(f"steady load: {errors} errors; gateway RSS {start.rss_mb:.0f} MiB at start, {warm.rss_mb:.0f} "
                  f"after warm-up, {end.rss_mb:.0f} at the end ({growth:+.1f} %), peak {watch.peak_mb:.0f}; "
                  f"fds {start.fds} at start, {warm.fds} after warm-up, {end.fds} at the end", flush=True)
            if errors:
                failures.append(f"{errors} errors under steady load")
            if growth >= 5 and not args.quick:  # rounds of seconds: one 2-minute recording more moves RSS by more
                failures.append(f"RSS grew {growth:.1f} % after warm-up")
            if end.fds > start.fds + 5:
                failures.append(f"fds grew from {start.fds} to {end.fds}")

            if not (args.no_kill or args.upstream):
                k = kill_under_load(url, watch, clients=args.clients, load_seconds=args.round_seconds,
                                    kill_after_s=min(15.0, args.round_seconds / 3))
                codes = [c for _, c in k.health]
                first_503 = next((t for t, c in k.health if c == 503), None)
                print(f"vLLM killed with {k.in_flight_at_kill:.0f} requests in flight: {k.during.served} served "
                      f"during the round ({statuses(k.during)}), {len(k.during.errors)} failed, "
                      f"{len(k.unclean)} of them not cleanly", flush=True)
                for e in k.unclean[:10]:
                    print(f"  unclean: {e}")
                print(f"/health: first 503 {first_503 if first_503 is None else round(first_503, 1)} s after the "
                      f"kill, 200 again after {k.back_after_s if k.back_after_s is None else round(k.back_after_s)} "
                      f"s ({Counter(codes)})", flush=True)
                if k.after is not None:
                    print(f"after the restart: {k.after.served} served ({statuses(k.after)}), "
                          f"{len(k.after.errors)} errors", flush=True)
                figures["kill"] = {"in_flight": k.in_flight_at_kill, "served_during": k.during.served,
                                   "failed_during": len(k.during.errors), "unclean": len(k.unclean),
                                   "first_503_s": first_503, "back_after_s": k.back_after_s,
                                   "served_after": k.after.served if k.after else 0,
                                   "errors_after": len(k.after.errors) if k.after else None}
                if k.unclean:
                    failures.append(f"{len(k.unclean)} requests failed uncleanly when vLLM was killed")
                if first_503 is None or k.back_after_s is None:
                    failures.append("/health did not go 503 then 200")
                if k.after is None or k.after.errors or not k.after.served:
                    failures.append("service did not resume cleanly after the restart")
        finally:
            code = gateway.stop(60)
        time.sleep(2)  # the gateway's children are stopped before it exits; give the kernel a moment to reap
        left = watch.tree.leftovers()
        print(f"gateway exited with {code}; processes seen in its tree: {len(watch.tree.seen)} in groups "
              f"{sorted(watch.tree.groups())}; left after shutdown: {left or 'none'}", flush=True)
        figures["shutdown"] = {"exit_code": code, "tree_seen": len(watch.tree.seen), "leftovers": left}
        if left:
            failures.append(f"processes left after shutdown: {left}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    print("FAILED: " + "; ".join(failures) if failures else "all soak checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
