"""The one typed settings object of policyloop: every part's section, composed here.

Each part owns its section and imports no other part's; only the command line composes them
(and the demo and the simulator's fleet runner, which run several parts). Precedence, highest
first: explicit overrides (CLI flags), ``POLICYLOOP_*`` environment variables (nested with
``__``, e.g. ``POLICYLOOP_KAFKA__BOOTSTRAP_SERVERS``), the TOML config file (``--config`` or
``POLICYLOOP_CONFIG``, default ``./policyloop.toml`` when present), and the embedded defaults,
which are local (``./.policyloop/``) so that nothing needs a cluster.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from learner.settings import LearnerSettings
from services.broker.settings import BrokerSettings
from services.decision.settings import DecisionServiceSettings
from services.interop.settings import InteropSettings
from services.kafka_settings import KafkaSettings
from services.rollout.settings import RolloutSettings
from services.sdk.settings import SdkSettings
from services.sessionizer.settings import SessionizerSettings
from services.storage_settings import TablesSettings

__all__ = ["Settings", "deep_merge", "load_settings"]

CONFIG_ENV_VAR = "POLICYLOOP_CONFIG"
DEFAULT_CONFIG_FILE = "policyloop.toml"

#: Keys that were once configured per part and now live in one shared section: a config that
#: still sets them is refused with the new name rather than silently ignored.
_MOVED_KEYS = {
    ("sessionizer", "table_uri"): "tables.timeline_uri (POLICYLOOP_TABLES__TIMELINE_URI)",
    ("learner", "timeline_uri"): "tables.timeline_uri (POLICYLOOP_TABLES__TIMELINE_URI)",
}


class Settings(BaseSettings):
    """Root settings: one section per part of the product, and ``tables``, the locations that
    several parts share (the command line hands them to each part)."""

    model_config = SettingsConfigDict(
        env_prefix="POLICYLOOP_", env_nested_delimiter="__", extra="forbid"
    )

    home: str = Field(default=".policyloop", description="Local state: broker pid, spool, tables.")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    sdk: SdkSettings = Field(default_factory=SdkSettings)
    sessionizer: SessionizerSettings = Field(default_factory=SessionizerSettings)
    learner: LearnerSettings = Field(default_factory=LearnerSettings)
    rollout: RolloutSettings = Field(default_factory=RolloutSettings)
    serve: DecisionServiceSettings = Field(default_factory=DecisionServiceSettings)
    interop: InteropSettings = Field(default_factory=InteropSettings)
    tables: TablesSettings = Field(default_factory=TablesSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Flags (init) beat the environment, which beats the config file, which beats the
        # embedded defaults.
        return (init_settings, env_settings, _FileSource(settings_cls))

    @model_validator(mode="before")
    @classmethod
    def _refuse_moved_keys(cls, values: Any) -> Any:
        if isinstance(values, dict):
            for (section, key), new_place in _MOVED_KEYS.items():
                part = values.get(section)
                if isinstance(part, dict) and key in part:
                    raise ValueError(f"{section}.{key} is now {new_place}")
        return values


class _FileSource(PydanticBaseSettingsSource):
    """Reads the TOML config file chosen by ``POLICYLOOP_CONFIG`` (or ./policyloop.toml)."""

    path: Path | None = None

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # Unused: __call__ returns the whole file at once.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = _FileSource.path
        if path is None:
            env_path = os.environ.get(CONFIG_ENV_VAR)
            path = Path(env_path) if env_path else Path(DEFAULT_CONFIG_FILE)
            if not env_path and not path.exists():
                return {}
        if not path.exists():
            raise FileNotFoundError(f"config file {path} does not exist")
        with path.open("rb") as fh:
            return tomllib.load(fh)


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` on top; nested dicts are merged key by key, not replaced."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(
    config_file: str | os.PathLike[str] | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    """Build the settings from file, environment and ``overrides`` (nested dict of flag values).

    ``overrides`` values of ``None`` are ignored so that unset CLI flags do not mask the
    environment or the file.
    """
    _FileSource.path = Path(config_file) if config_file else None
    try:
        cleaned = _drop_none(overrides or {})
        if not cleaned:
            return Settings()
        # init values take precedence over env; merge nested sections so a flag that sets one
        # field of a section does not reset the section's other fields from env or file.
        base = Settings().model_dump()
        return Settings(**deep_merge(base, cleaned))
    finally:
        _FileSource.path = None


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            nested = _drop_none(value)
            if nested:
                out[key] = nested
        elif value is not None:
            out[key] = value
    return out
