"""REST API of the SmartInventory app."""
