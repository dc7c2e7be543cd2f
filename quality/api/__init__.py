"""REST API of the quality app."""
