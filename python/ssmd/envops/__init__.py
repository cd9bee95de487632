"""Operations on a whole environment: `ssmd env teardown` (docs/teardown.md)."""

from ssmd.envops.owned import Holding, Prefixes
from ssmd.envops.teardown import teardown

__all__ = ["Holding", "Prefixes", "teardown"]
