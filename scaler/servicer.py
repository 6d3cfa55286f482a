"""KEDA's `ExternalScaler` service: trigger metadata -> Policy -> Signals (Prometheus) -> Decision -> answer.

- `GetMetricSpec`: one MetricSpec, `inferwatch-<model slug>`, target 1 (`targetSizeFloat=1.0`, `targetSize=1`),
  the same for the life of the ScaledObject: the capacity model goes into the value, never the target
  (KEDA does not refresh targets, keda#5706).
- `GetMetrics`: `metricValueFloat` = desired replicas (fractional), `metricValue` = its ceiling; with
  `metricType: AverageValue` the HPA then asks for ceil(desired) replicas.
- `IsActive`: the decision's `active` (KEDA's 0 <-> 1).
- `StreamIsActive` (`external-push`): the activity at once, then on every change, re-evaluated every
  `scaler.stream_poll_seconds`; at most `max_workers - 2` streams (each holds a worker thread), beyond that
  RESOURCE_EXHAUSTED (KEDA retries with back-off and still polls IsActive).
- `StreamMetricSpec` (KEDA v2.21+): UNIMPLEMENTED, which KEDA tolerates: the spec is constant, so a stream
  of it would only hold a thread.

Errors are gRPC errors, never a stale or zero value, so KEDA's `fallback` applies: malformed metadata is
INVALID_ARGUMENT naming the key, Prometheus not answering UNAVAILABLE, no demand data (or a refused query)
FAILED_PRECONDITION. No state is kept between calls apart from a decision cache of `decision_cache_seconds`
(KEDA asks GetMetrics and IsActive back to back), so any number of replicas can answer round-robin.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from inferwatch.config import ScalerConfig

from .metrics import ScalerCollector
from .policy import Decision, NoData, Policy, PolicyError, decide, parse_policy
from .proto import externalscaler_pb2 as pb
from .proto import externalscaler_pb2_grpc as pb_grpc
from .signals import PrometheusUnavailable, QueryRefused, SignalError, SignalReader

log = logging.getLogger(__name__)

SLUG_CHARS = 40
CACHE_ENTRIES = 1024


def metric_name(model: str) -> str:
    """`inferwatch-<slug>`: lower-case letters, digits and '-', at most 60 characters; a slug that is not
    the model name itself gets 8 hex digits of its hash, so two models never share a name."""
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")[:SLUG_CHARS].strip("-") or "model"
    if slug != model:
        slug = f"{slug}-{hashlib.sha256(model.encode('utf-8', 'replace')).hexdigest()[:8]}"
    return f"inferwatch-{slug}"


class Abort(Exception):
    """Answer the call with this gRPC status."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


def _rpc(method: Callable) -> Callable:
    """Count the call by status code; our Abort and bugs become gRPC statuses."""

    @functools.wraps(method)
    def wrapper(self: ExternalScaler, request: Any, context: grpc.ServicerContext) -> Any:
        name = method.__name__
        try:
            answer = method(self, request, context)
        except Abort as exc:
            self.collector.rpc(name, exc.code.name)
            context.abort(exc.code, str(exc)[:1000])
        except Exception as exc:
            log.exception("%s failed", name)
            self.collector.self_metrics.error("rpc", exc)
            self.collector.rpc(name, "INTERNAL")
            context.abort(grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__}); see the scaler's log")
        self.collector.rpc(name, "OK")
        return answer

    return wrapper


class ExternalScaler(pb_grpc.ExternalScalerServicer):
    def __init__(self, config: ScalerConfig, collector: ScalerCollector, reader: SignalReader,
                 clock: Callable[[], float] = time.time, stopping: threading.Event | None = None):
        self.config = config
        self.collector = collector
        self.reader = reader
        self.clock = clock
        self.stopping = stopping or threading.Event()
        self._cache: OrderedDict[tuple, tuple[float, Decision]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._streams = threading.BoundedSemaphore(max(1, config.max_workers - 2))

    def reconfigure(self, config: ScalerConfig) -> None:
        """A reloaded config (named policies, Prometheus, timeouts): from the next call on."""
        self.config = config
        with self._cache_lock:
            self._cache.clear()

    # -- the RPCs --
    @_rpc
    def GetMetricSpec(self, request: pb.ScaledObjectRef, context: grpc.ServicerContext) -> pb.GetMetricSpecResponse:
        policy = self._policy(request)
        return pb.GetMetricSpecResponse(metricSpecs=[
            pb.MetricSpec(metricName=metric_name(policy.model), targetSizeFloat=1.0, targetSize=1)])

    @_rpc
    def GetMetrics(self, request: pb.GetMetricsRequest, context: grpc.ServicerContext) -> pb.GetMetricsResponse:
        ref = request.scaledObjectRef
        policy = self._policy(ref)
        decision = self._decision(ref, policy)
        if not math.isfinite(decision.desired):  # never hand KEDA a NaN (it reads 0): an error gets the fallback
            raise Abort(grpc.StatusCode.INTERNAL, f"the policy computed {decision.desired!r} replicas")
        desired = max(0.0, decision.desired)
        return pb.GetMetricsResponse(metricValues=[
            pb.MetricValue(metricName=metric_name(policy.model), metricValueFloat=desired,
                           metricValue=math.ceil(desired))])

    @_rpc
    def IsActive(self, request: pb.ScaledObjectRef, context: grpc.ServicerContext) -> pb.IsActiveResponse:
        return pb.IsActiveResponse(result=self._decision(request, self._policy(request)).active)

    def StreamIsActive(self, request: pb.ScaledObjectRef, context: grpc.ServicerContext
                       ) -> Iterator[pb.IsActiveResponse]:
        if not self._streams.acquire(blocking=False):
            self.collector.rpc("StreamIsActive", "RESOURCE_EXHAUSTED")
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          "too many StreamIsActive streams open (scaler.max_workers); poll IsActive instead")
        self.collector.stream(+1)
        code, failure = "CANCELLED", None
        try:
            yield from self._stream_active(request, context)
            code = "OK" if context.is_active() else "CANCELLED"
        except Abort as exc:
            code, failure = exc.code.name, exc
        except Exception as exc:
            log.exception("StreamIsActive failed")
            self.collector.self_metrics.error("rpc", exc)
            code, failure = "INTERNAL", Abort(grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__})")
        finally:  # GeneratorExit (the client went away) passes through here as CANCELLED
            self.collector.stream(-1)
            self._streams.release()
            self.collector.rpc("StreamIsActive", code)
        if failure is not None:
            context.abort(failure.code, str(failure)[:1000])

    def StreamMetricSpec(self, request: pb.ScaledObjectRef, context: grpc.ServicerContext) -> Any:
        self.collector.rpc("StreamMetricSpec", "UNIMPLEMENTED")
        context.abort(grpc.StatusCode.UNIMPLEMENTED,
                      "StreamMetricSpec is not served: the metric spec is constant, GetMetricSpec gives it")

    # -- the work --
    def _stream_active(self, request: pb.ScaledObjectRef, context: grpc.ServicerContext
                       ) -> Iterator[pb.IsActiveResponse]:
        policy = self._policy(request)  # malformed metadata ends the stream with INVALID_ARGUMENT
        ended = threading.Event()
        context.add_callback(ended.set)
        last: bool | None = None
        while not (ended.is_set() or self.stopping.is_set()):
            try:
                active = self._decision(request, policy).active
            except Abort as exc:  # Prometheus trouble: push nothing, IsActive polls report it
                log.debug("StreamIsActive %s/%s: %s", request.namespace, request.name, exc)
                active = None
            if active is not None and active != last:
                last = active
                yield pb.IsActiveResponse(result=active)
            deadline = time.monotonic() + self.config.stream_poll_seconds
            while not (ended.is_set() or self.stopping.is_set()) and time.monotonic() < deadline:
                ended.wait(min(0.5, max(0.0, deadline - time.monotonic())))

    def _policy(self, ref: pb.ScaledObjectRef) -> Policy:
        try:
            return parse_policy(dict(ref.scalerMetadata), self.config.policies)
        except PolicyError as exc:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"scalerMetadata.{exc.key}: {exc.message}") from None

    def _decision(self, ref: pb.ScaledObjectRef, policy: Policy) -> Decision:
        now = self.clock()
        key = (ref.namespace, ref.name, policy)
        ttl = self.config.decision_cache_seconds
        if ttl > 0:
            with self._cache_lock:
                hit = self._cache.get(key)
            if hit is not None and 0 <= now - hit[0] < ttl:
                return hit[1]
        started = time.perf_counter()
        try:
            signals = self.reader.read(policy, self.config.prometheus_url, self.config.query_timeout_seconds, now,
                                       self.collector.query)
            decision = decide(policy, signals)
        except PrometheusUnavailable as exc:
            raise Abort(grpc.StatusCode.UNAVAILABLE, str(exc)) from None
        except (QueryRefused, SignalError, NoData) as exc:
            raise Abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from None
        self.collector.decided(ref.namespace, ref.name, policy.model, decision, time.perf_counter() - started)
        if ttl > 0:
            with self._cache_lock:
                self._cache[key] = (now, decision)
                self._cache.move_to_end(key)
                while len(self._cache) > CACHE_ENTRIES:
                    self._cache.popitem(last=False)
        return decision
