"""The domain steps of manage.py demo, registered by the apps in AppConfig.ready() and run in their order."""

from __future__ import annotations

from collections.abc import Callable

# step(options, say): options are the demo command's; say(text) prints a progress line.
DemoStep = Callable[[dict, Callable[[str], None]], None]

_STEPS: list[tuple[int, str, DemoStep]] = []


def add_demo_step(order: int, name: str, step: DemoStep) -> None:
    """Run `step` during manage.py demo, after the database is ready, in increasing `order`."""
    if all(existing != name for _, existing, _ in _STEPS):
        _STEPS.append((order, name, step))


def demo_steps() -> list[tuple[str, DemoStep]]:
    return [(name, step) for _, name, step in sorted(_STEPS, key=lambda s: (s[0], s[1]))]
