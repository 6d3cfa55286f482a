"""The one way to declare metrics: a table of families, and samples rendered through it.

Collectors produce `Sample`s keyed by a family's short name; the table knows each family's
exposed name, type, help and labels. So `describe()` lists every family without touching the
thing being measured, label sets are checked in one place, and a counter's `_total` suffix is
added in one place. Modelled on the GPU exporter's table (node_exporter style).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, NamedTuple

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Exemplar

Kind = Literal["gauge", "counter"]


class Sample(NamedTuple):
    family: str  # short name, key into the table
    labels: dict[str, str]
    value: float
    exemplar: Exemplar | None = None  # shown in OpenMetrics only (a request id: never a label)


@dataclass(frozen=True)
class Family:
    name: str  # short name: exposed as table prefix + name (+ `_total` for counters)
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()


class FamilyTable:
    """A component's families under one prefix (`inferwatch_gpu_`, `inferwatch_engine_`, ...)."""

    def __init__(self, prefix: str, families: Iterable[Family]):
        self.prefix = prefix
        self.families: dict[str, Family] = {}
        for family in families:
            if family.name in self.families:
                raise ValueError(f"family {family.name!r} declared twice")
            self.families[family.name] = family

    def exposed_name(self, family: Family) -> str:
        return self.prefix + family.name

    def describe(self) -> list[Metric]:
        """Every family, empty: what prometheus_client's `describe()` wants."""
        return [Metric(self.exposed_name(f), f.help, f.kind) for f in self.families.values()]

    def render(self, samples: Iterable[Sample]) -> list[Metric]:
        """Group samples into their families, in table order; families without samples are left out."""
        out: dict[str, Metric] = {}
        for sample in samples:
            family = self.families[sample.family]
            if len(sample.labels) != len(family.labels) or any(k not in sample.labels for k in family.labels):
                raise ValueError(f"{self.exposed_name(family)}: labels {sorted(sample.labels)} "
                                 f"do not match the table's {sorted(family.labels)}")
            name = self.exposed_name(family)
            metric = out.get(name)
            if metric is None:
                metric = out[name] = Metric(name, family.help, family.kind)
            metric.add_sample(name + "_total" if family.kind == "counter" else name, sample.labels, sample.value,
                              exemplar=sample.exemplar)
        order = {self.exposed_name(f): i for i, f in enumerate(self.families.values())}
        return sorted(out.values(), key=lambda m: order[m.name])
