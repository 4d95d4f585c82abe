"""The simulated fleet that plays "production", and the environments it runs."""
