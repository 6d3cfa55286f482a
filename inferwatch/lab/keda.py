"""A stand-in for KEDA's operator (lab): calls a running scaler the way KEDA does for one ScaledObject.

Every `interval` seconds (KEDA's pollingInterval): IsActive, then GetMetrics, over plain gRPC. The demo
runs it so the scaler makes real decisions and the Autoscaling dashboard has something to show; there is
no Kubernetes here, so nothing acts on the answers.
"""

from __future__ import annotations

import threading

from inferwatch.kit.extras import require


class KedaStandIn:
    def __init__(self, address: str, name: str, namespace: str, metadata: dict[str, str],
                 interval: float = 15.0) -> None:
        require("scaler")
        import grpc

        from inferwatch.scaler.proto import externalscaler_pb2 as pb
        from inferwatch.scaler.proto import externalscaler_pb2_grpc as pb_grpc

        self._pb = pb
        self._channel = grpc.insecure_channel(address)
        self._stub = pb_grpc.ExternalScalerStub(self._channel)
        self._ref = pb.ScaledObjectRef(name=name, namespace=namespace, scalerMetadata=metadata)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"keda-{name}")
        self.answers: list[tuple[bool, float]] = []  # (active, desired replicas) of each successful poll
        self.errors: list[str] = []  # gRPC status codes of failed polls (bounded)

    def start(self) -> KedaStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._channel.close()

    def poll(self) -> None:
        import grpc

        try:
            active = self._stub.IsActive(self._ref, timeout=10).result
            request = self._pb.GetMetricsRequest(scaledObjectRef=self._ref, metricName="inferwatch")
            (value,) = self._stub.GetMetrics(request, timeout=10).metricValues
        except grpc.RpcError as exc:
            self.errors = [*self.errors[-99:], exc.code().name]
            return
        self.answers = [*self.answers[-999:], (active, value.metricValueFloat)]

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self._interval)
