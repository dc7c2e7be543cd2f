"""Database backend for the embedded default: psqlextra's PostgreSQL backend that starts pgserver on first connect."""
