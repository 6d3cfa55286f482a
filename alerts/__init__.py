"""Alert rules (rendered from the mixin) and Alertmanager routing, shipped as package data."""
