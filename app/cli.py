"""Command-line tasks: `flask --app app <command>`. Each is idempotent and safe to schedule."""
from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

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


def init_app(app: Flask) -> None:
    app.cli.add_command(seed_cli)
    app.cli.add_command(demo_logins_command)
