"""Where the tables that several parts share live (``[tables]``, ``POLICYLOOP_TABLES__*``).

The timeline is written by the sessionizer and read by the learner and the rollout controller.
Its location is configured here, once, so that the three cannot disagree: no part keeps its own
copy in its settings section. The command line (and the demo) read this section and pass the
location to each part as an argument.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DEFAULT_TIMELINE_URI", "TablesSettings"]

#: Local by default, like every other location, so that nothing needs a cluster.
DEFAULT_TIMELINE_URI = ".policyloop/tables/timeline"


class TablesSettings(BaseModel):
    """Shared Delta table locations (a local path or an object-store URI such as ``s3://``)."""

    model_config = ConfigDict(extra="forbid")

    timeline_uri: str = Field(
        default=DEFAULT_TIMELINE_URI,
        description="The timeline: one row per decision, written by the sessionizer, read by "
        "the learner and the rollout controller.",
    )
