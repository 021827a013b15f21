"""What bench/imap.py prints at the end: ratios, slices, latencies, errors, isolation, idle memory.

Everything here reads results; nothing talks to a server. `report` returns whether the run failed
(a server that could not be measured, or any protocol error on either side), which becomes the exit
status.
"""

from __future__ import annotations

import os
import statistics

import imap_isolation
from imap_mix import COMMANDS, MIXES, SLICE, percentile


def _kib(value: float) -> str:
    return f"{value / 1024:,.0f} KiB"


def _ms(values: list[float], q: float) -> str:
    value = percentile(values, q)
    return "-" if value is None else f"{value * 1000:.1f}"


def report(results, args, corpora) -> bool:
    """Print the summary; True if the run failed."""
    by_name = {r.name: r for r in results}
    dovecot, tidings = by_name.get("Dovecot"), by_name.get("Tidings")
    count = sum(map(len, corpora.values()))
    mean = statistics.mean(len(m) for msgs in corpora.values() for m in msgs)
    print()
    print(
        f"IMAP benchmark: {len(corpora)} users x {args.messages} messages (mean {mean / 1024:.1f} KiB), "
        f"big mailbox {args.big:,} messages, {args.duration:.0f} s per run, "
        f"load generator {'asyncio' if args.no_uvloop else 'uvloop'}; load average now "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (others' work disturbs both servers' figures)"
    )
    for mix in args.mixes:
        print(f"mix {mix}: " + ", ".join(f"{op} {w}" for op, w in MIXES[mix].items() if w))
    _loading(results, args, count)
    _identity(dovecot, tidings, corpora)
    for mix in args.mixes:
        _throughput(results, dovecot, tidings, mix, args.clients)
    _errors(results)
    for r in results:
        if r.isolation:
            _isolation(r)
    _idle(results)
    failed = False
    for r in results:
        if r.failure:
            failed = True
        for stats in r.runs.values():
            if sum(stats.errors.values()) or stats.view_mismatches or stats.clients_lost:
                failed = True
        if r.isolation and r.isolation.stats and sum(r.isolation.stats.errors.values()):
            failed = True
    print()
    print("result: " + ("FAILED (see errors above)" if failed else "no protocol errors on either server"))
    return failed


def _loading(results, args, count: int) -> None:
    for r in results:
        if r.failure:
            print(f"{r.name}: FAILED: {r.failure}")
        if not r.load_seconds:
            continue
        line = (
            f"{r.name}: loaded {count} messages by APPEND in {r.load_seconds:.1f}s "
            f"({count / r.load_seconds:.0f}/s), first full summary FETCH in {r.sync_seconds:.1f}s"
        )
        if r.big_seconds:
            line += (
                f"; big mailbox: {r.big_count:,} by MULTIAPPEND in {r.big_seconds:.1f}s "
                f"({r.big_count / r.big_seconds:,.0f}/s)"
            )
        print(line)


def _identity(dovecot, tidings, corpora) -> None:
    if dovecot and tidings and dovecot.fingerprint and tidings.fingerprint:
        same = dovecot.fingerprint == tidings.fingerprint
        print(f"mailboxes identical (count and RFC822.SIZE per user): {'yes' if same else 'NO'}")
        if not same:
            for user in corpora:
                d, t = dovecot.fingerprint.get(user), tidings.fingerprint.get(user)
                if d != t:
                    print(f"  {user}: Dovecot {d}, Tidings {t}")
    if dovecot and tidings and dovecot.probes and tidings.probes:
        differ = [k for k in dovecot.probes if dovecot.probes[k] != tidings.probes.get(k)]
        print(f"probe answers (SEARCH, FETCH BODY[]) identical: {'yes' if not differ else 'NO'}")
        for key in differ:
            print(f"  {key}: Dovecot {dovecot.probes[key][:100]!r}, Tidings {tidings.probes.get(key)!r:.100}")


def _throughput(results, dovecot, tidings, mix: str, client_counts: list[int]) -> None:
    print()
    print(f"== mix {mix} ==")
    header = (
        f"{'clients':>7}  {'Dovecot ops/s':>13}  {'Tidings ops/s':>13}  {'Tidings/Dovecot':>15}"
        f"  {'commands/s D/T':>15}  {'errors D/T':>10}  {'races D/T':>9}  {'load-gen CPU D/T':>16}"
    )
    print(header)
    print("-" * len(header))
    for clients in client_counts:
        d = dovecot.runs.get((mix, clients)) if dovecot else None
        t = tidings.runs.get((mix, clients)) if tidings else None
        ratio = f"{t.rate / d.rate:.2f}" if d and t and d.rate else "-"
        commands = "/".join(f"{s.command_rate:,.0f}" if s else "-" for s in (d, t))
        errors = "/".join(str(sum(s.errors.values())) if s else "-" for s in (d, t))
        races = "/".join(str(sum(s.races.values())) if s else "-" for s in (d, t))
        cpu = "/".join(f"{s.client_cpu / s.elapsed:.0%}" if s else "-" for s in (d, t))
        print(
            f"{clients:>7}  {f'{d.rate:,.0f}' if d else '-':>13}  {f'{t.rate:,.0f}' if t else '-':>13}"
            f"  {ratio:>15}  {commands:>15}  {errors:>10}  {races:>9}  {cpu:>16}"
        )
    ratios = [
        tidings.runs[mix, c].rate / dovecot.runs[mix, c].rate
        for c in client_counts
        if dovecot
        and tidings
        and (mix, c) in dovecot.runs
        and (mix, c) in tidings.runs
        and dovecot.runs[mix, c].rate
    ]
    if ratios:
        verdict = "met" if min(ratios) >= 1.0 else "NOT met"
        print(
            f"goal Tidings >= 1.0 x Dovecot at every client count (issue 7): {verdict} "
            f"(lowest {min(ratios):.2f})"
        )
    print(f"ops/s per {SLICE:.0f}-second slice (mean):")
    for clients in client_counts:
        for r in results:
            stats = r.runs.get((mix, clients))
            if stats:
                slices = " ".join(f"{rate:,.0f}" for rate in stats.slice_rates())
                print(f"  {r.name:<8} {clients:>4} clients: {slices}  (mean {stats.rate:,.0f})")
    print("latency p50 / p99 in ms per command")
    for clients in client_counts:
        names = [
            name
            for name in COMMANDS
            if any(r.runs.get((mix, clients)) and r.runs[mix, clients].latencies.get(name) for r in results)
        ]
        print(f"  {clients} clients{'':<8}" + "".join(f"{name:>18}" for name in names))
        for r in results:
            stats = r.runs.get((mix, clients))
            if not stats:
                continue
            cells = "".join(
                f"{_ms(stats.latencies[name], 0.5) + ' / ' + _ms(stats.latencies[name], 0.99):>18}"
                for name in names
            )
            print(f"  {r.name:<17}{cells}")
    for clients in client_counts:
        stats = tidings.runs.get((mix, clients)) if tidings else None
        if stats and stats.loop_lag_ms:
            windows = " ".join(f"{lag:.0f}" for lag in stats.loop_lag_ms)
            print(
                f"  Tidings event loop lag ({clients} clients, worst per status-file write, ms): "
                f"max {max(stats.loop_lag_ms):.0f}; {windows}"
            )


def _errors(results) -> None:
    lines = []
    for r in results:
        for (mix, clients), stats in r.runs.items():
            where = f"{r.name} {mix} {clients} clients"
            for op, n in sorted(stats.errors.items()):
                lines.append(f"  {where}: {n} {op} error(s), e.g. {stats.error_samples[op]}")
            for op, n in sorted(stats.races.items()):
                lines.append(f"  {where}: {n} {op} NO [EXPUNGEISSUED] (allowed race, not an error)")
            if stats.view_mismatches:
                lines.append(
                    f"  {where}: {stats.view_mismatches} client(s) counted a different number of messages "
                    "(EXISTS/EXPUNGE) than SEARCH ALL finds"
                )
            if stats.clients_lost:
                lines.append(f"  {where}: {stats.clients_lost} client(s) lost their connection")
        iso = r.isolation.stats if r.isolation else None
        if iso:
            for op, n in sorted(iso.errors.items()):
                lines.append(f"  {r.name} isolation: {n} {op} error(s), e.g. {iso.error_samples[op]}")
    print()
    print("protocol errors (NO/BAD/unexpected) per operation:" + ("" if lines else " none"))
    for line in lines:
        print(line)


def _isolation(r) -> None:
    iso = r.isolation
    goal = percentile(iso.window, 0.99)
    verdict = "-" if goal is None else ("met" if goal < 0.1 else "NOT met")
    print()
    print(
        f"{r.name} isolation: APPEND of {iso.message_bytes / 1e6:.0f} MB took {iso.append_seconds:.2f}s, "
        f"first SELECT of the big mailbox ({iso.select_exists:,} EXISTS) took {iso.select_seconds:.2f}s; "
        f"window {iso.window_seconds:.2f}s"
    )
    print(
        f"  {imap_isolation.LIGHT_CLIENTS} light clients, ms: baseline p50 {iso.p('baseline', 0.5)} "
        f"p99 {iso.p('baseline', 0.99)} ({len(iso.baseline)} ops); in the window p50 {iso.p('window', 0.5)} "
        f"p99 {iso.p('window', 0.99)} max {iso.p('window', 1.0)} ({len(iso.window)} ops); "
        f"goal p99 < 100 ms: {verdict}"
    )
    if iso.loop_lag_ms:
        print(f"  Tidings event loop lag during the scenario (worst per status write, ms): {iso.loop_lag_ms}")


def _idle(results) -> None:
    print()
    for r in results:
        idle = r.idle
        if not idle:
            continue
        line = (
            f"{r.name}: {idle.connections} idle connections (IDLE, INBOX selected): "
            f"RSS {idle.rss_before / 2**20:.1f} -> {idle.rss_after / 2**20:.1f} MiB, "
            f"{_kib(idle.rss_per_connection)} per connection"
        )
        if idle.processes > 1:
            line += (
                f" (sum over {idle.processes} processes; PSS {_kib(idle.pss_per_connection)} per connection)"
            )
        if idle.failed:
            line += f"; {idle.failed} failed to open"
        print(line)
