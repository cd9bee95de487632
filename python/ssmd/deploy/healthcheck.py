"""The image's HEALTHCHECK: GET a component's health URL, exit 0 on 200, 1 otherwise.

    python -m ssmd.deploy.healthcheck [URL]

The URL is the argument, else $SSMD_HEALTH_URL, else the gateway's /v1/health on
127.0.0.1:8080 (what `ssmd up` and `ssmd gateway run` serve by default). The connector
and archiver serve /health on their --health-port. Standard library only, so that a
probe costs one interpreter start.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from typing import Final

DEFAULT_URL: Final = "http://127.0.0.1:8080/v1/health"
TIMEOUT_SECONDS: Final = 4.0


def probe(url: str, timeout: float = TIMEOUT_SECONDS) -> tuple[bool, str]:
    """(healthy, what was seen): healthy only for an HTTP 200 answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200, f"{url}: HTTP {response.status}"
    except urllib.error.HTTPError as error:
        return False, f"{url}: HTTP {error.code}"
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return False, f"{url}: {reason}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    url = args[0] if args else os.environ.get("SSMD_HEALTH_URL") or DEFAULT_URL
    healthy, seen = probe(url)
    print(seen, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
