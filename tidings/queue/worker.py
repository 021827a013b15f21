"""The delivery loop: claims due queue entries and delivers them, recipient by recipient.

One `QueueWorker` runs per server process (started by `tidings.server`). It wakes when the store
publishes a queue change (Change(0, None, "queue")) and otherwise sleeps until the next entry is due
or `queue.poll_interval` passes. Each claimed entry is attempted once: recipients are grouped by
domain; local domains (scheduled sends to our own users) are delivered into mailboxes, remote ones
are relayed to their next hops with at most `queue.per_domain_concurrency` connections per domain.

Crash safety: an entry is claimed with a lease (`queue.lease`, renewed while its attempt runs); the
outcome is recorded only after the remote server answered, so a crash loses nothing and at worst
repeats a delivery whose 250 was not yet recorded (the duplicate window of RFC 5321 section 6.1).
DSNs are sent before the outcome is recorded, for the same reason: a duplicate report is better than
a lost one. On a clean shutdown the claims are released at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from dataclasses import replace

from tidings.mail.address import BadAddress
from tidings.mail.hops import MAX_HOPS, hop_count
from tidings.net.tls import client_context
from tidings.notify import Change
from tidings.queue import backoff
from tidings.queue.dsn import RecipientReport, bounce, send_report
from tidings.queue.mx import Resolver, RoutingError, make_resolver, next_hops
from tidings.queue.outcome import Attempt, deferred, failed
from tidings.queue.relay import RelayJob, RelayRecipient, relay
from tidings.queue.signing import outbound
from tidings.store import AliasLoop, NotFound
from tidings.store.delivery import Envelope
from tidings.store.queue import QueueEntry, QueueRecipient, RecipientOutcome

log = logging.getLogger(__name__)

MAX_PARALLEL_ENTRIES = 32  # entries attempted at once by one node


class QueueWorker:
    def __init__(
        self, app, resolver: Resolver | None = None, max_parallel: int = MAX_PARALLEL_ENTRIES
    ) -> None:
        self.app = app
        self.store = app.store
        self.settings = app.config.queue
        self.node_id = app.config.node_id
        self.resolver = resolver
        self.max_parallel = max_parallel
        self.tls_context = client_context(verify=False)  # RFC 7435: opportunistic, unauthenticated
        self._wake = asyncio.Event()
        self._inflight: dict[int, asyncio.Task] = {}
        self._domain_slots: dict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(max(1, self.settings.per_domain_concurrency))
        )

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Deliver until cancelled; on cancellation stop attempts and release their claims."""
        unsubscribe = self.store.hub.subscribe(0, self._on_change)
        renewer = asyncio.create_task(self._renew_leases(), name="queue-lease-renewal")
        try:
            while True:
                self._wake.clear()
                try:
                    await self._start_due()
                except Exception:
                    log.exception("queue scan failed")
                await self._sleep()
        finally:
            unsubscribe()
            renewer.cancel()
            await self._shutdown()

    def wake(self) -> None:
        self._wake.set()

    def _on_change(self, change: Change) -> None:
        if change.kind == "queue":
            self._wake.set()

    async def _start_due(self) -> None:
        free = self.max_parallel - len(self._inflight)
        if free <= 0:
            return
        lease = self.settings.lease
        for entry in await self.store.queue.claim_due(self.node_id, limit=free, lease=lease):
            if entry.id in self._inflight:  # our own claim expired while still working: keep one attempt
                continue
            self._inflight[entry.id] = asyncio.create_task(self._attempt(entry), name=f"queue-{entry.id}")

    async def _sleep(self) -> None:
        timeout = self.settings.poll_interval
        try:
            due = await self.store.queue.next_due()
        except Exception:
            log.exception("reading the next due time failed")
            due = None
        if due is not None:
            timeout = min(timeout, max(0.0, due - time.time()))
        if timeout > 0 and not self._wake.is_set():
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that
            # arrives together with the wake-up, and this loop then never stops (a hung shutdown).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def _renew_leases(self) -> None:
        interval = max(0.5, self.settings.lease / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.store.queue.extend_lease(list(self._inflight), self.node_id, self.settings.lease)
            except Exception:
                log.exception("renewing queue leases failed")

    async def _shutdown(self) -> None:
        tasks = list(self._inflight.items())
        for _, task in tasks:
            task.cancel()
        for _, task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for queue_id, _ in tasks:
            try:
                await self.store.queue.release(queue_id)
            except Exception:
                log.exception("releasing queue entry %s failed", queue_id)

    async def _attempt(self, entry: QueueEntry) -> None:
        try:
            await self.deliver_entry(entry)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Whatever broke, the entry goes through the same conclusion as any attempt, so it still
            # expires (and bounces) at the end of its lifetime instead of being retried for ever.
            log.exception("delivery attempt for queue entry %s failed", entry.id)
            internal = deferred("4.3.0", f"internal error: {exc}")
            try:
                await self._conclude(entry, {r.id: internal for r in entry.pending})
            except Exception:
                log.exception("queue %s: recording the failed attempt failed", entry.id)
                with contextlib.suppress(Exception):
                    await self.store.queue.record(
                        entry.id,
                        [],
                        backoff.next_attempt_at(time.time(), entry.attempts, entry.release_at, self.settings),
                        error=internal.reply,
                        node_id=self.node_id,
                    )
        finally:
            self._inflight.pop(entry.id, None)
            self._wake.set()

    # -- one attempt ---------------------------------------------------------------------------

    async def deliver_entry(self, entry: QueueEntry) -> bool | None:
        """Attempt every pending recipient once, send the DSNs that are due, record the outcome.
        Returns True when the entry is finished (nothing pending any more), None when another node
        took the entry over meanwhile (nothing recorded)."""
        try:
            raw = await self.store.blobs.get(entry.blob_hash)
        except NotFound:
            log.error("queue %s: message body %s is missing; bouncing", entry.id, entry.blob_hash)
            lost = failed("5.3.0", "the message was lost from the mail system's storage", code=554)
            return await self._conclude(entry, {r.id: lost for r in entry.pending})
        by_domain: dict[str, list[QueueRecipient]] = defaultdict(list)
        for recipient in entry.pending:
            by_domain[recipient.domain].append(recipient)
        local = {d for d in by_domain if await self.store.accounts.is_local_domain(d)}
        sender, outgoing = entry.sender, raw
        remote = set(by_domain) - local
        too_many_hops = bool(remote) and hop_count(raw) > MAX_HOPS
        if remote and not too_many_hops:
            # Signed if an authenticated user submitted it; a forward otherwise (SRS, no signature).
            sender, outgoing = await outbound(
                self.store, self.app.srs, authored=entry.account_id is not None, sender=sender, message=raw
            )

        results: dict[int, Attempt] = {}

        async def one_domain(domain: str, recipients: list[QueueRecipient]) -> None:
            # One domain's trouble stays its own: the others' results (e.g. already relayed) are kept.
            try:
                if domain in local:
                    for recipient in recipients:
                        results[recipient.id] = await self._deliver_local(entry, recipient, raw)
                elif too_many_hops:
                    # RFC 5321 section 6.3: a message that went through this many relays is looping.
                    loop = failed("5.4.6", f"Too many hops ({hop_count(raw)} Received fields)", code=554)
                    results.update({r.id: loop for r in recipients})
                else:
                    results.update(await self._relay_domain(entry, domain, recipients, sender, outgoing))
            except Exception as exc:
                log.exception("queue %s: delivery to %s failed", entry.id, domain)
                broken = deferred("4.3.0", f"internal error: {exc}")
                for recipient in recipients:
                    results.setdefault(recipient.id, broken)

        await asyncio.gather(*(one_domain(d, rs) for d, rs in by_domain.items()))
        return await self._conclude(entry, results)

    async def _relay_domain(
        self, entry: QueueEntry, domain: str, recipients: list[QueueRecipient], sender: str, message: bytes
    ) -> dict[int, Attempt]:
        async with self._domain_slots[domain]:
            try:
                if self.resolver is None and domain not in self.settings.routes:
                    self.resolver = make_resolver(self.settings)
                hops = await next_hops(domain, self.settings, self.resolver, self.app.config.hostname)
            except RoutingError as exc:
                attempt = failed(exc.status, exc.text) if exc.permanent else deferred(exc.status, exc.text)
                return {r.id: attempt for r in recipients}
            job = RelayJob(
                sender=sender,
                recipients=[RelayRecipient(r.id, r.address, r.notify, r.orcpt) for r in recipients],
                message=message,
                envid=entry.envid,
                ret=entry.ret,
                smtputf8=entry.smtputf8,
                body_8bit=entry.body_8bit,
            )
            return await relay(
                job, hops, helo=self.app.config.hostname, settings=self.settings, tls_context=self.tls_context
            )

    async def _deliver_local(self, entry: QueueEntry, recipient: QueueRecipient, raw: bytes) -> Attempt:
        """A recipient in one of our domains (scheduled sending, or waiting for room in a full mailbox):
        its mailboxes, or its forwards."""
        store = self.store
        try:
            targets = await store.accounts.resolve(recipient.address)
        except BadAddress:
            return failed("5.1.3", f"bad recipient address {recipient.address}", code=501)
        except AliasLoop as exc:
            return failed("5.4.6", f"{recipient.address}: {exc}", code=554)
        if targets is None:
            return failed("5.1.1", f"no such user here: {recipient.address}")
        delivered, full, forwards = False, [], []
        for target in targets:
            if not await store.accounts.is_local_domain(target.rpartition("@")[2]):
                forwards.append(target)
                continue
            try:
                account = await store.accounts.get_user(target)
            except NotFound:
                continue
            if await store.delivery.deliver_local(target, raw, entry.blob_hash):
                delivered = True
            else:
                full.append(account)
        if forwards:
            orcpt = recipient.orcpt or f"rfc822;{recipient.address}"
            envelope = Envelope(
                sender=entry.sender,
                remote=[(f, recipient.notify, orcpt) for f in forwards],
                envid=entry.envid,
                ret=entry.ret,
                smtputf8=entry.smtputf8,
                body_8bit=entry.body_8bit,
                account_id=entry.account_id,
            )
            await store.delivery.accept(envelope, raw)
            delivered = True
        if delivered:
            return Attempt("delivered", 250, "2.0.0", "delivered")
        if full and all(a.quota_bytes is not None and len(raw) > a.quota_bytes for a in full):
            return failed("5.2.2", f"message is larger than the mailbox of {recipient.address}", code=552)
        if full:
            # RFC 3463 X.2.2 may be transient: the owner can make room, so retry until the lifetime ends.
            return deferred("4.2.2", f"mailbox of {recipient.address} is full", code=452)
        return failed("5.1.1", f"no such user here: {recipient.address}")

    async def _conclude(self, entry: QueueEntry, results: dict[int, Attempt]) -> bool | None:
        """Turn this attempt's results into DSNs and the recorded outcome."""
        settings = self.settings
        now = time.time()
        expired = backoff.is_expired(now, entry.release_at, settings)
        outcomes: list[RecipientOutcome] = []
        failures: list[RecipientReport] = []
        successes: list[RecipientReport] = []
        delays: list[RecipientReport] = []
        first_error: str | None = None
        for recipient in entry.pending:
            attempt = results.get(recipient.id) or deferred("4.3.0", "not attempted")
            status = attempt.status
            if attempt.state == "deferred" and expired:
                attempt = Attempt("failed", attempt.code, attempt.status, attempt.text, attempt.remote_mta)
                status = "5.4.7"  # RFC 3463: delivery time expired
            report = dict(
                address=recipient.address,
                diagnostic=attempt.reply,
                remote_mta=attempt.remote_mta,
                orcpt=recipient.orcpt,
                notify=recipient.notify,
                last_attempt=now,
            )
            if attempt.state == "failed":
                failures.append(RecipientReport(action="failed", status=status, **report))
            elif attempt.state == "delivered":
                if attempt.remote_mta is None or attempt.relayed_without_dsn:
                    action = "relayed" if attempt.remote_mta else "delivered"
                    successes.append(RecipientReport(action=action, status="2.0.0", **report))
            else:
                first_error = first_error or attempt.reply
                delays.append(
                    RecipientReport(
                        action="delayed",
                        status=status,
                        will_retry_until=backoff.expires_at(entry.release_at, settings),
                        **report,
                    )
                )
            state = {"delivered": "delivered", "failed": "failed"}.get(attempt.state, "pending")
            outcomes.append(RecipientOutcome(recipient.id, state, attempt.reply, attempt.remote_mta))

        warn = bool(delays) and backoff.delay_warning_due(now, entry.release_at, entry.delay_warned, settings)
        if failures:
            try:
                await bounce(self.app, entry, failures)
            except Exception:
                log.exception("queue %s: sending the failure DSN failed", entry.id)
                if not expired:
                    # The sender must hear of the failure: keep the recipients and try again later
                    # rather than drop the message without a word.
                    outcomes = [replace(o, status="pending") if o.status == "failed" else o for o in outcomes]
                    first_error = first_error or "failure report could not be sent yet"
                else:
                    log.error("queue %s: expired and its failure DSN cannot be sent; giving up", entry.id)
        # A failing success or delay report must not undo the attempt: recording it matters more.
        for reports in (successes, delays if warn else []):
            if reports:
                try:
                    await send_report(self.app, entry, reports)
                except Exception:
                    log.exception("queue %s: sending the %s DSN failed", entry.id, reports[0].action)
        for report in failures:
            log.info("queue %s: %s failed: %s", entry.id, report.address, report.diagnostic)
        finished = await self.store.queue.record(
            entry.id,
            outcomes,
            backoff.next_attempt_at(now, entry.attempts, entry.release_at, settings),
            error=first_error,
            delay_warned=True if warn else None,
            node_id=self.node_id,
        )
        if finished is None:
            log.warning("queue %s: claimed by another node meanwhile; this attempt is not recorded", entry.id)
            return None
        if not finished:
            log.info("queue %s: deferred (%s)", entry.id, first_error)
        return finished
