"""A local Kalshi for tests and demos: `ssmd sim run`, or `async with Simulator(...)`."""

from ssmd.sim.book import BookState
from ssmd.sim.clock import AcceleratedClock, Clock, ManualClock, RealClock
from ssmd.sim.faults import CommandRate, Fault, FaultKind, Scenario
from ssmd.sim.server import DEMO_KEY_ID, DEMO_PRIVATE_KEY_PATH, DEMO_PUBLIC_KEY_PATH, Simulator
from ssmd.sim.truth import ConnectionRecord, FaultRecord, Truth

__all__ = [
    "DEMO_KEY_ID",
    "DEMO_PRIVATE_KEY_PATH",
    "DEMO_PUBLIC_KEY_PATH",
    "AcceleratedClock",
    "BookState",
    "Clock",
    "CommandRate",
    "ConnectionRecord",
    "Fault",
    "FaultKind",
    "FaultRecord",
    "ManualClock",
    "RealClock",
    "Scenario",
    "Simulator",
    "Truth",
]
