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

    def start(self) -> KedaStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._channel.close()

    def poll(self) -> None:
        """One KEDA poll. Its answers go nowhere: the scaler's own metrics (and the dashboard) show them,
        errors included."""
        import grpc

        try:
            self._stub.IsActive(self._ref, timeout=10)
            self._stub.GetMetrics(self._pb.GetMetricsRequest(scaledObjectRef=self._ref, metricName="inferwatch"),
                                  timeout=10)
        except grpc.RpcError:
            pass  # counted by the scaler (inferwatch_scaler_rpcs_total{code!="OK"})

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self._interval)
