"""The marketplace's jobs: the periodic sweeps (each also a CLI command) and one-off tasks.

Every sweep is idempotent: running it twice, or late, or by hand changes nothing more than running
it once on time. Each returns a sentence saying what it did (shown on the operator's Jobs page).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from procrastinate import RetryStrategy
from sqlalchemy.orm import Session

from app.jobs import Swept, register_sweep, task


def _saleor(config: Mapping[str, Any]) -> bool:
    return config.get("COMMERCE_BACKEND") == "saleor"


def _postgres(config: Mapping[str, Any]) -> bool:
    return str(config.get("SQLALCHEMY_DATABASE_URI") or "").startswith("postgresql")


# --- sweeps ---------------------------------------------------------------------------------------

def expire_holds(session: Session) -> Swept:
    """Release credit holds past their TTL."""
    from app.services import billing

    count = billing.expire_holds(session)
    return Swept(count, f"Released {count} expired hold(s).")


def expire_grants(session: Session) -> Swept:
    """Remove the unused credits of trial and promotional grants past their expiry."""
    from app.services import billing

    count = billing.expire_grants(session)
    return Swept(count, f"Expired credits of {count} grant(s).")


def expire_trials(session: Session) -> Swept:
    """Mark trial instances whose trial has ended as expired."""
    from app.services import instances

    count = len(instances.expire_ended_trials(session))
    return Swept(count, f"Expired {count} ended trial(s).")


def fail_stale_runs(session: Session) -> Swept:
    """Fail the runs that will not end by themselves (their job was lost, or their runner died) and release
    their holds."""
    from flask import current_app

    from app.services import run_endings

    count = run_endings.fail_stale_runs(session, run_timeout=float(current_app.config.get("RUN_TIMEOUT") or 60))
    return Swept(count, f"Failed {count} stale run(s).")


class ReconcileIncomplete(Exception):
    """Some paid orders could not be provisioned; each is named in the message."""


@dataclass
class ReconcileReport:
    provisioned: int = 0
    failed: int = 0
    remote_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        return (f"Reconciled: {self.provisioned} order(s) provisioned, {self.failed} failed"
                + (f", {self.remote_checked} paid Saleor order(s) checked." if self.remote_checked else "."))


def reconcile(session: Session, *, hours: int = 24, config: Mapping[str, Any] | None = None) -> ReconcileReport:
    """Provision paid orders that are not provisioned yet: local ones, and (with Saleor) orders Saleor
    holds as paid in the last `hours` whose webhook was lost (only our channel's orders that carry our order
    reference: the rest of a shared store is never read or counted). Each order is committed on its own."""
    from flask import current_app

    from app.adapters.commerce import CommerceUnavailable
    from app.adapters.commerce.checkout import get_checkout
    from app.models import Order, utcnow
    from app.services import orders, provisioning

    config = current_app.config if config is None else config
    report = ReconcileReport()
    for order_id in [o.id for o in orders.unprovisioned_paid_orders(session)]:
        try:
            result = provisioning.handle_order_paid(session, order=session.get(Order, order_id),
                                                    actor_label="reconcile-orders")
            session.commit()
            report.provisioned += bool(result.provisioned_line_ids)
        except Exception as exc:  # one broken order must not stop the others
            session.rollback()
            report.failed += 1
            report.problems.append(f"order {order_id}: {exc}")
    if config.get("COMMERCE_BACKEND") != "saleor":
        return report
    remote_orders = []
    try:
        remote_orders = get_checkout().paid_orders(since=utcnow() - timedelta(hours=hours))
    except CommerceUnavailable as exc:
        report.failed += 1
        report.problems.append(f"Saleor could not be asked for paid orders: {exc}")
    for remote in remote_orders:
        report.remote_checked += 1
        name = remote.number or remote.external_id
        try:
            # an order naming one of ours we never recorded: its checkout request failed after
            # Saleor took the payment; once it is old enough, take it in by the buyer's email
            settled = remote.created_at is None or remote.created_at < utcnow() - timedelta(minutes=15)
            applied = orders.apply_remote_payment(session, remote=remote, actor_label="reconcile-orders",
                                                  import_unmatched_reference=settled)
            session.commit()
        except Exception as exc:
            session.rollback()
            report.failed += 1
            report.problems.append(f"Saleor order {remote.external_id}: {exc}")
            continue
        report.provisioned += bool(applied.provisioned_lines)
        if applied.problem:
            report.problems.append(f"Saleor order {name}: {applied.problem}")
        if applied.unknown_skus:
            report.problems.append(f"Saleor order {name}: unknown SKUs {', '.join(sorted(set(applied.unknown_skus)))}")
    return report


def reconcile_orders(session: Session) -> str:
    """Provision paid orders whose payment notice was lost (and, with Saleor, orders it holds as paid).

    A run with failures is recorded as failed, naming them."""
    report = reconcile(session)
    if report.failed:
        raise ReconcileIncomplete(f"{report.summary} {'; '.join(report.problems)}")
    return report.summary


def queue_store_syncs(session: Session) -> str:
    """Queue a store sync for every offering whose product in Saleor is missing, stale or failed, and
    one for the credit packs when they changed since their last push (or it failed). One job per
    offering (and one for the packs) at most: a sync that is waiting (or backing off) is skipped."""
    from app.services import jobs, offerings

    todo = offerings.offerings_to_sync(session)
    for offering in todo:
        jobs.defer(session, "sync-offering", queueing_lock=f"sync-offering:{offering.id}", offering_id=offering.id)
    packs = offerings.credit_packs_to_sync(session)
    if packs:
        jobs.defer(session, "sync-credit-packs", queueing_lock="sync-credit-packs")
    return f"{len(todo)} offering(s) to sync with the store" + ("; the credit packs too." if packs else ".")


def purge_finished_jobs(session: Session) -> str:
    """Delete jobs that succeeded more than JOB_KEEP_HOURS ago; failed ones stay for the Jobs page."""
    from flask import current_app

    from app.jobs.engine import purge_finished_jobs as purge

    from app.jobs.engine import uses_queue

    if not uses_queue(session):
        return "Jobs run in process on this database: there is no queue to purge."
    hours = int(current_app.config.get("JOB_KEEP_HOURS") or 168)
    return f"Deleted {purge(session, hours=hours)} finished job(s) older than {hours} hours."


def send_mail(session: Session) -> Swept:
    """Send queued mail that is due: mail whose job was lost, and failed mail past its back-off."""
    from app import mailing

    sent, left = mailing.send_pending(session.get_bind(), limit=500)
    return Swept(sent, f"Sent {sent} mail(s); {left} not sent.")


def trial_reminders(session: Session) -> int:
    """Mail "your free trial ends in two days" once per trial."""
    from app.services import mail

    return mail.send_trial_reminders(session)


def low_balance_mails(session: Session) -> int:
    """Mail owners and admins of organizations whose balance fell below their threshold, once per notice."""
    from app.services import mail

    return mail.mail_low_balance_notices(session)


def retry_stalled_jobs(session: Session) -> Swept:
    """Queue again the jobs of workers that died while running them."""
    from app.jobs.engine import retry_stalled_jobs as retry, uses_queue

    count = retry(session) if uses_queue(session) else 0
    return Swept(count, f"Queued {count} job(s) of stopped workers again.")


def renew_subscriptions(session: Session, *, as_of: datetime | None = None) -> Swept:
    """Renew the subscriptions whose period has ended (a saved card is charged) and retry failed renewals."""
    from flask import current_app

    from app.models import utcnow
    from app.services import subscriptions

    if current_app.config.get("COMMERCE_BACKEND") == "saleor":
        from app.adapters.commerce.saleor.renewals import SaleorRenewals

        gateway = SaleorRenewals.from_config(current_app.config)
    else:
        from app.adapters.commerce.checkout import get_checkout

        gateway = get_checkout("local")
    report = subscriptions.renew_due_subscriptions(session, now=as_of or utcnow(), gateway=gateway,
                                                   commit=session.commit)
    return Swept(report.count, report.summary())


register_sweep("expire-holds", expire_holds, every=60, command=False)  # the command also expires grants
register_sweep("expire-grants", expire_grants, every=300)
register_sweep("expire-trials", expire_trials, every=300, command=False)
register_sweep("fail-stale-runs", fail_stale_runs, every=300, command=False)
register_sweep("reconcile-orders", reconcile_orders, every=300, when=_saleor, command=False)
register_sweep("sync-saleor", queue_store_syncs, every=300, when=_saleor, command=False)
register_sweep("purge-finished-jobs", purge_finished_jobs, every=3600, when=_postgres)
register_sweep("retry-stalled-jobs", retry_stalled_jobs, every=60, when=_postgres)
register_sweep("renew-subscriptions", renew_subscriptions, every=300, command=False)
register_sweep("send-mail", send_mail, every=60, command=False)  # its command takes --limit and exits 1 on failures
register_sweep("trial-reminders", trial_reminders, every=3600, says="Queued {} trial reminder(s).")
register_sweep("low-balance-mails", low_balance_mails, every=300, says="Queued {} low-balance mail(s).")


def purge_expired_sessions(session: Session) -> int:
    """Delete signed-in sessions past their idle timeout or lifetime (they are refused already)."""
    from app.services import identity

    return identity.purge_expired_sessions(session)


# its command, `purge-sessions`, is the sign-in package's own (app/auth/commands.py)
register_sweep("purge-sessions", purge_expired_sessions, every=3600, says="Purged {} expired session(s).",
               command=False)


# --- one-off tasks --------------------------------------------------------------------------------

class StoreSyncFailed(Exception):
    """The offering could not be pushed to the store; its sync error says why."""


@task("sync-offering", retry=RetryStrategy(max_attempts=6, exponential_wait=3))  # 3 s, 9 s, ... 12 min
def sync_offering(session: Session, *, offering_id: int) -> str:
    """Push one offering to the store (Saleor). A failure is kept on the offering, then raised so
    the job is retried with backoff; the sync-saleor sweep queues it again after the last attempt."""
    from app.adapters.commerce.product_sync import get_product_sync
    from app.models import Offering
    from app.services import offerings

    sync = get_product_sync()
    if sync is None:
        return "The commerce backend keeps no catalog of its own: nothing to sync."
    offering = session.get(Offering, offering_id)
    if offering is None or offering.status not in ("published", "archived"):
        return "Nothing to sync: the offering is gone or not published."
    ok = offerings.sync_offering(session, offering=offering, sync=sync, actor_label="jobs")
    session.commit()  # the recorded outcome stays, whether or not the job is retried
    if not ok:
        raise StoreSyncFailed(offering.sync_error or "The store could not be updated.")
    return f"“{offering.name}” is up to date in the store."


@task("sync-credit-packs", retry=RetryStrategy(max_attempts=6, exponential_wait=3))
def sync_credit_packs(session: Session) -> str:
    """Push the credit packs for sale to the store (Saleor): one product, a variant per pack. A failure
    is raised so the job is retried with backoff; the sync-saleor sweep queues it again after that."""
    from app.adapters.commerce.product_sync import get_product_sync
    from app.services import offerings

    sync = get_product_sync()
    if sync is None:
        return "The commerce backend keeps no catalog of its own: nothing to sync."
    ok = offerings.sync_credit_packs(session, sync=sync, actor_label="jobs")
    session.commit()
    if not ok:
        raise StoreSyncFailed("The credit packs could not be pushed to the store; see the audit log.")
    return "The credit packs are up to date in the store."


# 1 + 7 retries: the eight tries a message gets before it is marked failed (mail.MAX_ATTEMPTS)
@task("deliver-mail", retry=RetryStrategy(max_attempts=7, exponential_wait=4))  # 4 s, 16 s, ... 4.5 h
def deliver_mail(session: Session, *, message_id: int) -> str:
    """Send one queued mail (deferred with the mail by `mail.queue_mail`). A refusal is kept on the
    message (tries, error), then raised so the job is retried with backoff; a mail that was sent
    already (by an earlier run or the send-mail sweep) is never sent again."""
    from app.services import mail

    try:
        sent = mail.deliver_mail(session, message_id=message_id)
    except mail.MailDeliveryError:
        session.commit()  # the recorded attempt stays, whether or not the job is retried
        raise
    return f"Sent mail {message_id}." if sent else f"Mail {message_id} was sent already or is no longer queued."


# no automatic retry: a runtime call is not repeated behind the caller's back (a run whose job
# died is failed and released by fail-stale-runs; the caller retries with the same idempotency key)
@task("execute-run", queue="runs", background=True)
def execute_run(session: Session, *, run_id: int, version_id: int | None = None) -> str:
    """Run one queued run: call its runtime, stream its events, settle or release its hold."""
    from flask import current_app

    from app.services import runner

    return runner.execute_run(session, run_id=run_id, version_id=version_id,
                              timeout=float(current_app.config.get("RUN_TIMEOUT") or 60),
                              late_wait=float(current_app.config.get("RUN_LATE_WAIT") or 30))
