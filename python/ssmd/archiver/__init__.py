"""The archiver: NATS JetStream -> durable local spool -> sealed archives + manifests.

See docs/archiver.md. Entry points: `ssmd archiver run --env ENV`, or
`Archiver(ArchiverSettings(...)).run(stop_event)`.
"""

from ssmd.archiver.consumer import ConsumerSettings
from ssmd.archiver.runner import Archiver, ArchiverSettings

__all__ = ["Archiver", "ArchiverSettings", "ConsumerSettings"]
