"""Capacity sweeps and configuration advice (`inferwatch recommend`)."""
