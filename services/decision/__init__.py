"""The decision service: ``PolicyClient`` and ``DecisionLogger`` behind HTTP (``policyloop serve``).

Nothing is imported here: the command line loads :mod:`services.decision.settings` to compose
its settings, and must not pay for FastAPI or torch when it does. The app is built by
:func:`services.decision.app.create_app` and run by :func:`services.decision.server.serve`.
"""
