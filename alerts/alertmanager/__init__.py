"""Alertmanager routing shipped as package data."""
