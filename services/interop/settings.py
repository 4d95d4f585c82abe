"""Settings of import, export and score (``[interop]`` in the config, ``POLICYLOOP_INTEROP__*``).

Where the timeline lives is not here: the sessionizer writes it and the learner reads it, so it
is the shared ``[tables]`` section (:mod:`services.storage_settings`), handed to the importer and
the exporter as an argument by the command line, exactly as the sessionizer gets it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["InteropSettings"]


class InteropSettings(BaseModel):
    """How big the batches are, where rejected rows go and how much an import keeps open."""

    model_config = ConfigDict(extra="forbid")

    rejects_dir: str = Field(
        default=".policyloop/import-rejects",
        description="One JSON-lines file of rejected rows per imported source file, named after "
        "the file and its content hash.",
    )
    batch_rows: int = Field(
        default=20_000,
        ge=1,
        description="Rows per Arrow batch read from a source and written to the table (import), "
        "and states per policy call (score).",
    )
    vectorized: bool = Field(
        default=True,
        description="Import rllib-json, csv and parquet in Arrow batches (validation, episode "
        "rules and rows per batch; rows that fail a vectorized check go row by row for their "
        "exact reject). False: every row by the row path, about 15 µs a row.",
    )
    max_open_episodes: int = Field(
        default=100_000,
        ge=1,
        description="Episodes an import holds open (their end not yet read). One more closes the "
        "least recently read one, as its format's default end; its later rows are rejected as "
        "'late'. Keeps memory flat for files larger than memory.",
    )
    closed_memory_episodes: int = Field(
        default=100_000,
        ge=0,
        description="Recently closed episodes remembered to tell late rows from new episodes.",
    )
    workers: int | None = Field(
        default=None,
        ge=1,
        description="Processes that convert one large file (default: one per CPU, at most 8).",
    )
    parallel_min_bytes: int = Field(
        default=32 << 20,
        ge=0,
        description="Files smaller than this are converted by one process (starting workers "
        "costs about a second).",
    )
    score_threads: int | None = Field(
        default=None,
        ge=1,
        description="Torch threads of policyloop score (default: torch's own, one per core). "
        "On a machine shared with other work, 1 is often faster: idle threads spin.",
    )
    policy_version: str = Field(
        default="imported",
        min_length=1,
        max_length=256,
        description="policy_version of imported rows whose source does not name one.",
    )
