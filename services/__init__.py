"""What runs next to production: the logging SDK, the sessionizer, the embedded broker, the
simulated fleet and the ``policyloop`` command line."""
