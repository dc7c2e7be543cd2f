"""Tests of the SmartInventory app."""
