"""psqlextra's backend, starting (or joining) the project's own PostgreSQL when it first connects.

Used when DATABASE_URL is unset (prodplan.database.embedded_database): importing the settings starts nothing;
the first command, request or task that needs the database does."""

from __future__ import annotations

from psqlextra.backend.base import DatabaseWrapper as PsqlextraDatabaseWrapper

from prodplan.database import start_embedded


class DatabaseWrapper(PsqlextraDatabaseWrapper):
    def get_connection_params(self):
        start_embedded(self.settings_dict)  # fills HOST/PORT/USER from the running server
        return super().get_connection_params()
