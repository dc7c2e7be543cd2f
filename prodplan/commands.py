"""Management-command base: a database that cannot be reached is a one-line error naming why, not a traceback."""

from __future__ import annotations

from django.core.management import BaseCommand, CommandError
from django.db import InterfaceError, OperationalError

from prodplan.asof import InvalidAsOf, as_of_from


def database_unreachable_message(exc: Exception) -> str | None:
    """The operator's one line for a failed connection (host, port, database; never a password), else None."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, OperationalError | InterfaceError) and "connection" in text.lower():
        return f"database unavailable: {text} (check DATABASE_URL and that PostgreSQL is running)"
    return None


class DatabaseCommand(BaseCommand):
    """A command that needs PostgreSQL: exit 1 with the reason when it cannot connect."""

    def execute(self, *args, **options):
        try:
            return super().execute(*args, **options)
        except (OperationalError, InterfaceError) as exc:
            message = database_unreachable_message(exc)
            if message is None:
                raise
            raise CommandError(message) from exc


def start_option(value: str | None, *, default):
    """A backtest's --start: the as-of rule (prodplan.asof), a bare date meaning its first instant; else default().

    A bad value or no data to default from is a CommandError naming the option."""
    if value:
        try:
            start = as_of_from(value)
        except InvalidAsOf as exc:
            raise CommandError(f"--start: {exc.message()}") from exc
        return start.replace(hour=0, minute=0, second=0) if len(value) == 10 else start
    start = default()
    if start is None:
        raise CommandError("No successful ingestion: give --start.")
    return start
