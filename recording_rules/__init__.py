"""Recording rules (rendered from the mixin), shipped as package data."""
