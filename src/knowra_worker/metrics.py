"""Prometheus metrics of an instance, served at /metrics.

Counters are kept by the API process; the task gauges are read from Redis at scrape time,
so every instance reports the whole cluster's queue the same way.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from knowra_worker.errors import KnowraError
from knowra_worker.models import State
from knowra_worker.store import TaskStore


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.submitted = Counter(
            "knowra_tasks_submitted",
            "start_task requests by outcome (created, existing, rerun)",
            ["outcome"],
            registry=self.registry,
        )
        self.controls = Counter(
            "knowra_task_controls",
            "pause, resume and cancel requests that changed a task",
            ["action"],
            registry=self.registry,
        )
        self.recovered = Counter(
            "knowra_tasks_recovered",
            "orphaned tasks re-queued by this instance's recovery",
            registry=self.registry,
        )

    def watch(self, store: TaskStore) -> None:
        self.registry.register(_TaskGauges(store))


class _TaskGauges(Collector):
    def __init__(self, store: TaskStore) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        tasks = GaugeMetricFamily(
            "knowra_active_tasks", "tasks not yet final, by state", labels=["state"]
        )
        instances = GaugeMetricFamily("knowra_instances", "live instances of the cluster")
        try:
            by_state = Tally(self.store.active_states())
            count = len(self.store.list_instances())
        except KnowraError:
            return  # Redis unreachable: no gauges rather than wrong ones
        for state in State:
            if not state.is_final:
                tasks.add_metric([state.value], by_state.get(state.value, 0))
        instances.add_metric([], count)
        yield tasks
        yield instances
