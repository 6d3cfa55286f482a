// Entry point for jsonnet-bundler / kube-prometheus users vendoring this repository.
import 'inferwatch/mixin/mixin.libsonnet'
