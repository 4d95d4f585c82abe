"""The ``policyloop`` command line."""
