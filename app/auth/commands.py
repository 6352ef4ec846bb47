"""Command-line tasks of signing in: `flask --app app purge-sessions` (safe to schedule and repeat)."""
from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext

from app.extensions import db


@click.command("purge-sessions")
@with_appcontext
def purge_sessions_command() -> None:
    """Delete the records of signed-in sessions that idled out or reached their lifetime."""
    from app.services import identity

    purged = identity.purge_expired_sessions(db.session)
    db.session.commit()
    click.echo(f"Purged {purged} expired session(s).")


def init_app(app: Flask) -> None:
    app.cli.add_command(purge_sessions_command)
