"""REST API of the orders domain (PRODPLAN and KPI endpoints)."""
