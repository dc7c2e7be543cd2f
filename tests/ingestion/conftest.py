"""Fixtures of the ingestion tests (the shared ones live in tests/conftest.py)."""

from tests.conftest import DOMAIN_TABLES

__all__ = ["DOMAIN_TABLES"]
