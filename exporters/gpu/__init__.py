"""GPU exporter on NVML (pynvml): utilisation, memory, thermals, power, errors, MIG, containers."""
