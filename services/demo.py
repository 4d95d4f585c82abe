"""``policyloop demo``: the most complete flow that exists, on embedded defaults only.

Today that is the logging half of the loop: start the embedded broker, play a realistic stream
of recommendation episodes through the SDK's ``DecisionLogger`` (a stochastic policy that logs
every decision with its propensity, rewards that arrive after the decision, episode ends), read
everything back from the topic with a plain consumer and show what arrived, then stop every
process it started. Later stages (sessionizer, learner, rollout) join this flow as they land.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from schemas.wire import decode_record
from services.broker.embedded import start_broker, stop_broker
from services.kafka_topics import ensure_topics
from services.sdk import DecisionLogger
from services.settings import Settings

__all__ = ["DemoResult", "run_demo"]

ITEMS = ["news", "sports", "music", "movies"]


@dataclass
class DemoResult:
    """What the demo logged and what it read back from the broker."""

    logged: Counter = field(default_factory=Counter)
    arrived: Counter = field(default_factory=Counter)
    logged_ids: set[str] = field(default_factory=set)
    arrived_ids: Counter = field(default_factory=Counter)
    episodes: int = 0
    per_partition: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.arrived_ids.values() if n > 1)

    @property
    def missing(self) -> int:
        return len(self.logged_ids - set(self.arrived_ids))

    @property
    def complete(self) -> bool:
        """Every logged event id arrived, exactly once, and nothing else arrived."""
        return self.duplicates == 0 and self.arrived_ids.keys() == self.logged_ids


def _play_episode(
    logger: DecisionLogger, rng: random.Random, episode_id: str, logged: Counter, ids: set[str]
) -> None:
    """One user session: a few recommendations, each clicked with a feature-dependent chance."""
    affinity = {item: rng.random() for item in ITEMS}
    steps = rng.randint(1, 6)
    for step in range(steps):
        state = {
            "hour": float(rng.randint(0, 23)),
            "session_len": float(step),
            **{f"affinity_{item}": round(affinity[item], 3) for item in ITEMS},
        }
        possible = ITEMS if rng.random() > 0.2 else ITEMS[:3]
        probs = [1.0 / len(possible)] * len(possible)
        index = rng.randrange(len(possible))
        decision_id = logger.decision(
            episode_id,
            step,
            state,
            possible[index],
            possible,
            probs[index],
            "uniform",
            action_probs=probs,
        )
        logged["decision"] += 1
        clicked = rng.random() < 0.1 + 0.8 * affinity[possible[index]]
        reward_id = logger.reward(
            episode_id, step, 1.0 if clicked else 0.0, metrics={"dwell_s": 30.0 * clicked}
        )
        logged["reward"] += 1
        ids.update((decision_id, reward_id))
    ids.add(logger.end_episode(episode_id, terminal=rng.random() < 0.9, last_step=steps - 1))
    logged["episode_end"] += 1


def _read_back(settings: Settings, bootstrap: str, expected: int, timeout_s: float) -> DemoResult:
    topic = settings.kafka.events_topic
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **settings.kafka.client_options()
    )
    result = DemoResult()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + timeout_s
        total = 0
        while total < expected and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=500).items():
                for record in records:
                    events = decode_record(record.value)
                    total += len(events)
                    result.per_partition[tp.partition] = result.per_partition.get(
                        tp.partition, 0
                    ) + len(events)
                    result.arrived.update(event["type"] for event in events)
                    result.arrived_ids.update(event["event_id"] for event in events)
    finally:
        consumer.close()
    return result


def run_demo(
    settings: Settings, episodes: int = 2_000, seed: int = 0, console: Console | None = None
) -> DemoResult:
    """Run the demo and return what happened; every process it starts is stopped on return."""
    console = console or Console()
    home = Path(settings.home) / "demo"
    started = time.monotonic()
    console.print("[bold]policyloop demo[/]: embedded broker → SDK → topic")
    handle = start_broker(home, port=0, binary=settings.broker.binary)
    try:
        console.print(f"broker up at {handle.bootstrap_servers} (pid {handle.pid})")
        kafka = settings.kafka.model_copy(update={"bootstrap_servers": handle.bootstrap_servers})
        ensure_topics(kafka)
        rng = random.Random(seed)
        logged: Counter = Counter()
        ids: set[str] = set()
        sdk = settings.sdk.model_copy(update={"spool_dir": str(home / "spool")})
        with (
            DecisionLogger(kafka=kafka, settings=sdk) as logger,
            Progress(console=console, transient=True) as progress,
        ):
            task = progress.add_task("logging episodes", total=episodes)
            for n in range(episodes):
                _play_episode(logger, rng, f"user-{seed}-{n}", logged, ids)
                progress.advance(task)
            logger.flush(timeout=60)
        result = _read_back(settings, handle.bootstrap_servers, sum(logged.values()), 60)
        result.logged = logged
        result.logged_ids = ids
        result.episodes = episodes
    finally:
        stop_broker(home)
        console.print("broker stopped")
    result.seconds = time.monotonic() - started
    _show(console, result, settings.kafka.events_topic)
    return result


def _show(console: Console, result: DemoResult, topic: str) -> None:
    table = Table(title=f"what arrived on {topic}")
    table.add_column("event type")
    table.add_column("logged", justify="right")
    table.add_column("arrived", justify="right")
    for event_type in ("decision", "reward", "episode_end"):
        table.add_row(
            event_type, f"{result.logged[event_type]:,}", f"{result.arrived[event_type]:,}"
        )
    console.print(table)
    spread = ", ".join(f"p{p}: {n:,}" for p, n in sorted(result.per_partition.items()))
    console.print(f"{result.episodes:,} episodes; events per partition: {spread}")
    if result.complete:
        verdict = "every event arrived exactly once (compared by event_id)"
    else:
        verdict = f"{result.missing} events missing, {result.duplicates} duplicated"
    console.print(f"[bold]{verdict}[/] in {result.seconds:.1f}s")
