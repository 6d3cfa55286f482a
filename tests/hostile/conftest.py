"""The hostile tier: misbehaving peers as fixtures (inferwatch/lab/hostile.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the shared tests/helpers.py

from inferwatch.lab.fake_openai import Behaviour, FakeOpenAI
from inferwatch.lab.hostile import HostilePeer


@pytest.fixture
def hostile() -> Iterator[Callable[..., HostilePeer]]:
    started: list[HostilePeer] = []

    def start(mode: str, **options) -> HostilePeer:
        peer = HostilePeer(mode, **options).start()
        started.append(peer)
        return peer

    yield start
    for peer in started:
        peer.stop()


@pytest.fixture
def healthy() -> Iterator[Callable[[], FakeOpenAI]]:
    """Well-behaved engines serving model "m": the lab's one fake OpenAI server."""
    started: list[FakeOpenAI] = []

    def start() -> FakeOpenAI:
        fake = FakeOpenAI(Behaviour(model="m")).start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()
