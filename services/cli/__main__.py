"""``python -m services.cli ...`` is the same as the ``policyloop`` script."""

from services.cli.main import cli

cli()
