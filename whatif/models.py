"""Models of the whatif app."""
