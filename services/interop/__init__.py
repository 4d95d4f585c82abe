"""Bring your history, take your data anywhere: ``policyloop import``, ``export`` and ``score``.

* :mod:`.importer` imports logs of other tools (RLlib JSON and parquet, ReAgent, Open Bandit
  Pipeline, any CSV or parquet with a column map) into the timeline, exactly once per file, with
  the live contract: the readers (one module per format) turn rows into the events of
  ``schemas/events.py``, and :mod:`.episodes` validates them and builds rows with the
  sessionizer's row builder (``schemas/rows.py``);
* :mod:`.export` writes a pinned version of the timeline for d3rlpy, RLlib or plain parquet;
* :mod:`.score` runs a registry version over a table of states in batches (a batch transform).

Layering: this part imports ``schemas/``, the shared helpers and the registry's read side, and
never the learner (import-linter, ``pyproject.toml``). Nothing is imported here, so that the
command line's help stays light.
"""
