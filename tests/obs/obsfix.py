"""The metric registries the components build, and the series names they can expose."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from _support import ROOT
from ssmd.archiver import Archiver, ArchiverSettings
from ssmd.archiver.metrics import build_registry
from ssmd.config import Overrides, load_environment
from ssmd.connector.runner import Connector, Settings
from ssmd.gateway.metrics import GatewayMetrics
from ssmd.obs.metrics import CollectorRegistry, exported_names
from ssmd.sim.server import DEMO_KEY_ID, KEYS_DIR
from ssmd.store.local import LocalObjectStore

# ssmd's own series, as an expression or a dashboard names them
SERIES = re.compile(r"\bssmd_[a-z0-9_]+")


def connector(tmp: Path, **changes: Any) -> Connector:
    """A connector of the simulator's environment, not started."""
    env = load_environment(
        "kalshi-sim",
        ROOT / "exchanges",
        Overrides(nats_url="nats://127.0.0.1:9", data_dir=str(tmp)),
        environ={
            "KALSHI_API_KEY": DEMO_KEY_ID,
            "KALSHI_PRIVATE_KEY_PATH": str(KEYS_DIR / "demo_private_key.pem"),
        },
    )
    changes.setdefault("spool_path", tmp / "connector.spool")
    return Connector(Settings.from_environment(env, **changes))


def registries(tmp: Path) -> dict[str, CollectorRegistry]:
    """Each component's registry, built as the component builds it (nothing connected)."""
    archiver = Archiver(
        ArchiverSettings(
            env="kalshi-sim",
            feed="kalshi",
            nats_url="nats://127.0.0.1:9",
            stream="SSMD_KALSHI_SIM",
            raw_store=LocalObjectStore(tmp / "raw"),
            normalized_store=LocalObjectStore(tmp / "normalized"),
            spool_dir=tmp / "spool",
        )
    )
    return {
        "connector": connector(tmp).metrics.registry,
        "archiver": build_registry(archiver),
        "gateway": GatewayMetrics().registry,
    }


def exported(tmp: Path) -> set[str]:
    """Every series name any component can expose."""
    return set().union(*(exported_names(r) for r in registries(tmp).values()))
