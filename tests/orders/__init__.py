"""Tests of the orders domain (selectors, API)."""
