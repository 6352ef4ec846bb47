"""Command-line tasks: `flask --app app <command>`. Each is idempotent and safe to schedule."""
from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from app.extensions import db

seed_cli = AppGroup("seed", help="Load data.")


@seed_cli.command("demo")
@click.option("--if-empty", is_flag=True, help="Only when the database has no users yet.")
def seed_demo_command(if_empty: bool) -> None:
    """Create the demo catalog and demo users (idempotent)."""
    from sqlalchemy import func, select

    from app.models import User
    from app.services import seed

    if if_empty and db.session.scalar(select(func.count()).select_from(User)):
        click.echo("Database already has data: demo seed skipped.")
        return
    report = seed.seed_demo(db.session, password=current_app.config["DEMO_PASSWORD"])
    db.session.commit()
    click.echo(f"Demo data: created {len(report.created)} item(s)." if report.changed else "Demo data already present.")


@click.command("demo-logins")
def demo_logins_command() -> None:
    """Print the demo accounts and their password."""
    from app.services.seed import DEMO_USERS

    password = current_app.config["DEMO_PASSWORD"]
    click.echo("Demo accounts (password: %s)" % password)
    for email, name, roles in DEMO_USERS:
        click.echo(f"  {email:<24} {', '.join(roles)}")


@click.command("expire-holds")
@with_appcontext
def expire_holds_command() -> None:
    """Release credit holds past their TTL and expire trial and promotional credits past their date."""
    holds = _run_task("expire-holds")
    grants = _run_task("expire-grants")
    click.echo(f"Released {holds.count} expired hold(s); expired credits of {grants.count} grant(s).")


@click.command("expire-trials")
@with_appcontext
def expire_trials_command() -> None:
    """Mark trial instances whose trial has ended as expired."""
    click.echo(str(_run_task("expire-trials")))


def _run_task(name: str):
    """Run a registered task here and now, as the worker would (its own session, committed, recorded
    as the periodic task's latest run); a failure ends the command with status 1."""
    from app.jobs import load_tasks
    from app.jobs.runtime import run_task

    try:
        return run_task(current_app._get_current_object(), load_tasks()[name], {}, record_failures=False)
    except Exception as exc:
        click.echo(f"{name} failed: {exc}", err=True)
        raise click.exceptions.Exit(1) from exc


def _sweep_command(spec) -> click.Command:
    """`flask --app app <name>` for a sweep registered with command=True."""

    def command() -> None:
        click.echo(str(_run_task(spec.name)))

    command.__doc__ = (spec.func.__doc__ or spec.name).strip().split("\n")[0] + " (also a periodic task)"
    return click.command(spec.name)(with_appcontext(command))


@click.command("verify-ledger")
@with_appcontext
def verify_ledger_command() -> None:
    """Recompute every wallet from its ledger, grants and holds; exit status 1 when any disagree."""
    from sqlalchemy import func, select

    from app.models import LedgerEntry, Wallet
    from app.services import billing

    problems = billing.verify_ledger(db.session)
    wallets = db.session.scalar(select(func.count()).select_from(Wallet))
    entries = db.session.scalar(select(func.count()).select_from(LedgerEntry))
    db.session.rollback()
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        raise click.exceptions.Exit(1)
    click.echo(f"Ledger OK: {wallets} wallet(s) agree with their {entries} ledger entries.")


@click.command("verify-payouts")
@with_appcontext
def verify_payouts_command() -> None:
    """Check every publisher's earnings against its paid order lines, refunds and payouts: for every month,
    gross = refunds + platform fees + net, and net = payouts + balance owed; exit status 1 with the differences."""
    from sqlalchemy import func, select

    from app.models import EarningEntry, Payout
    from app.services import payouts

    problems = payouts.verify_payouts(db.session)
    entries = db.session.scalar(select(func.count()).select_from(EarningEntry))
    paid = db.session.scalar(select(func.count()).select_from(Payout))
    db.session.rollback()
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        raise click.exceptions.Exit(1)
    click.echo(f"Payouts OK: {entries} earning entries and {paid} payout(s) agree with the orders and refunds.")


@click.command("record-earnings")
@with_appcontext
def record_earnings_command() -> None:
    """Record the publishers' sale earnings of paid orders that have none (orders paid before earnings were
    kept), at today's fee; safe to run again."""
    from app.services import payouts

    count = payouts.record_missing_sale_earnings(db.session)
    db.session.commit()
    click.echo(f"Recorded the earnings of {count} paid order line(s).")


@click.command("fail-stale-runs")
@with_appcontext
def fail_stale_runs_command() -> None:
    """Fail the runs that will not end by themselves (queued past their hold, or running past their time
    limit after their runner died) and release their holds."""
    click.echo(str(_run_task("fail-stale-runs")))


@click.command("reconcile-orders")
@with_appcontext
@click.option("--hours", default=24, show_default=True, type=click.IntRange(1, 24 * 90),
              help="How far back to ask Saleor for paid orders.")
def reconcile_orders_command(hours: int) -> None:
    """Provision paid orders that are not provisioned yet (a lost or failed webhook). Safe to repeat."""
    from app.jobs.tasks import reconcile

    report = reconcile(db.session, hours=hours)
    for problem in report.problems:
        click.echo(problem, err=True)
    click.echo(report.summary)
    if report.failed:
        raise click.exceptions.Exit(1)


@click.command("sync-saleor")
@click.option("--all", "sync_all", is_flag=True, help="Also re-sync offerings already in step with Saleor.")
@click.option("--offering", "slugs", multiple=True, help="Only this offering (slug); repeatable.")
def sync_saleor_command(sync_all: bool, slugs: tuple[str, ...]) -> None:
    """Push published offerings to Saleor: new, changed and failed ones (retries), and the credit packs
    when they changed. Safe to repeat."""
    from app.adapters.commerce.product_sync import get_product_sync
    from app.services import offerings

    sync = get_product_sync()
    if sync is None:
        click.echo("COMMERCE_BACKEND is not saleor: nothing to sync.", err=True)
        raise click.exceptions.Exit(2)
    todo = offerings.offerings_to_sync(db.session, include_synced=sync_all or bool(slugs))
    if slugs:
        todo = [o for o in todo if o.slug in set(slugs)]
    synced = failed = 0
    for offering in todo:
        ok = offerings.sync_offering(db.session, offering=offering, sync=sync, actor_label="sync-saleor")
        db.session.commit()  # each outcome is kept, whatever happens to the next one
        if ok:
            synced += 1
        else:
            failed += 1
            click.echo(f"{offering.slug}: {offering.sync_error}", err=True)
    packs = ""
    if not slugs and (sync_all or offerings.credit_packs_to_sync(db.session)):
        packs_ok = offerings.sync_credit_packs(db.session, sync=sync, actor_label="sync-saleor")
        db.session.commit()
        packs = " Credit packs synced." if packs_ok else " Credit packs failed."
        if not packs_ok:
            click.echo("credit packs: the store refused them or did not answer (see the audit log)", err=True)
    click.echo(f"Saleor sync: {synced} offering(s) synced, {failed} failed.{packs}")
    if failed or packs.endswith("failed."):
        raise click.exceptions.Exit(1)


@click.command("worker")
@click.option("--concurrency", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Jobs this worker runs at the same time (each in its own thread).")
@click.option("--queue", "--queues", "queues", multiple=True,
              help="Only jobs of this queue (runs: the run queue); repeatable. Default: all.")
@click.option("--ready-file", type=click.Path(dir_okay=False),
              help="Create this file once the worker takes jobs (for scripts that start it).")
@with_appcontext
def worker_command(concurrency: int, queues: tuple[str, ...], ready_file: str | None) -> None:
    """Run jobs and the periodic tasks until stopped (Ctrl-C or SIGTERM finish the running job first).

    On PostgreSQL start as many workers as you need, on as many machines: each job runs once and
    each periodic task once per tick. On SQLite this runs the periodic tasks only (jobs run in the
    process that deferred them); start one.
    """
    from app.jobs.worker import run_worker

    run_worker(current_app._get_current_object(), concurrency=concurrency, queues=list(queues) or None,
               ready_file=ready_file)


@click.command("renew-subscriptions")
@click.option("--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Renew as if it were the end of this day (UTC), YYYY-MM-DD. Development and tests only.")
@with_appcontext
def renew_subscriptions_command(as_of) -> None:
    """Renew the subscriptions whose period has ended and retry failed renewals (also a periodic task)."""
    from datetime import timedelta, timezone

    if as_of is None:
        click.echo(str(_run_task("renew-subscriptions")))
        return
    if current_app.config.get("APP_ENV") != "development" and not current_app.testing:
        click.echo("renew-subscriptions --as-of moves the clock for renewals, so it runs only with "
                   "APP_ENV=development (or in tests). Run it without --as-of to renew what is due now.", err=True)
        raise click.exceptions.Exit(2)
    moment = as_of.replace(tzinfo=timezone.utc) + timedelta(days=1, microseconds=-1)
    from app.jobs import load_tasks
    from app.jobs.runtime import run_task

    try:
        swept = run_task(current_app._get_current_object(), load_tasks()["renew-subscriptions"],
                         {"as_of": moment}, record_failures=False)
    except Exception as exc:
        click.echo(f"renew-subscriptions failed: {exc}", err=True)
        raise click.exceptions.Exit(1) from exc
    click.echo(f"As of {as_of:%Y-%m-%d}: {swept}")


@click.command("send-mail")
@with_appcontext
@click.option("--limit", default=500, show_default=True, type=click.IntRange(1, 10_000), help="At most this many mails.")
def send_mail_command(limit: int) -> None:
    """Send queued mail that is due (new, or failed earlier and past its back-off). Safe to schedule."""
    from app import mailing

    sent, left = mailing.send_pending(db.engine, limit=limit)
    click.echo(f"Sent {sent} mail(s); {left} not sent (see the Outbox page for the errors).")
    if left:
        raise click.exceptions.Exit(1)


def init_app(app: Flask) -> None:
    app.cli.add_command(seed_cli)
    app.cli.add_command(demo_logins_command)
    app.cli.add_command(expire_holds_command)
    app.cli.add_command(expire_trials_command)
    app.cli.add_command(verify_ledger_command)
    app.cli.add_command(verify_payouts_command)
    app.cli.add_command(record_earnings_command)
    app.cli.add_command(fail_stale_runs_command)
    app.cli.add_command(reconcile_orders_command)
    app.cli.add_command(sync_saleor_command)
    app.cli.add_command(worker_command)
    app.cli.add_command(renew_subscriptions_command)
    from app.jobs import load_tasks

    for spec in load_tasks().values():
        if spec.periodic and spec.command:
            app.cli.add_command(_sweep_command(spec))
    app.cli.add_command(send_mail_command)
