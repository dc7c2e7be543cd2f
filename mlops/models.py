"""Models of the mlops app."""
