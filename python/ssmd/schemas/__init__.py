"""The normalized record schema, ssmd.capnp, shipped inside the package.

`CAPNP_FILE` is a byte-for-byte copy of the repository's schemas/ssmd.capnp,
which stays the one source: `just gen-schemas` copies it here, and
`just check-schemas` and the tests fail if the two differ. Installed from a
wheel, ssmd reads the schema from here, so no checkout is needed:

    zstd -dc data.capnp.zst | capnp decode --packed $(ssmd schema path) Record
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

__all__ = ["CAPNP_FILE"]

CAPNP_FILE: Final = Path(__file__).with_name("ssmd.capnp")
