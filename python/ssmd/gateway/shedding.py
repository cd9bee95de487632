"""Load shedding: how many clients go when the gateway cannot carry its load.

Each client's own backlog is bounded by the hub (a client whose connection stops taking
writes, or whose messages wait `send_timeout`, is closed with 4408). But when the
gateway as a whole cannot keep up (applying the stream and writing to every client
take more than the process has), it falls behind the stream, the backlog builds on the
NATS server, and the delay grows for every client alike. Then
the newest clients are closed with 1013 ("try again later"): those that stay get their
latency back, and those closed learn the gateway is overloaded instead of being served
ever later.

`Shedder` decides how many from what the hub shows it at every look (no I/O here):
- `delay`: how far behind the stream the gateway is (seconds since the stream stored
  the newest message applied, while more wait);
- `deficit`: the share of the stream that arrived over the last second and was not
  applied (the growth of the backlog over what arrived; 0 when it shrank);
- `drain`: seconds the backlog would take to be worked off at the pace it shrank over
  the last second (infinite when it did not shrink).
While the delay exceeds `after` at two looks in a row (so a pause of one look, a
collection say, sheds nobody) and the backlog will not be gone within a second, the
share `deficit` of the clients is closed, at least a tenth (a backlog that holds still
keeps every client late) and at most half; then nobody more for `cooldown` seconds, so
that the effect of one closing is seen before the next. A backlog being caught up
within a second sheds nobody while the delay comes down.
"""

from __future__ import annotations

import math
from typing import Final

__all__ = ["CLOSE_OVERLOADED", "Shedder"]

CLOSE_OVERLOADED: Final = 1013  # WebSocket "try again later"


class Shedder:
    def __init__(self, after: float, cooldown: float = 0.5) -> None:
        self.after = after  # 0: never shed
        self.cooldown = cooldown
        self._quiet_until = 0.0
        self._late = False  # the delay exceeded `after` at the last look

    def observe(self, now: float, delay: float, deficit: float, drain: float, clients: int) -> int:
        """How many of `clients` open clients to close at time `now` (seconds)."""
        late, self._late = self._late, delay > self.after
        if self.after <= 0 or clients == 0 or not (late and self._late) or drain <= 1.0:
            return 0
        if now < self._quiet_until:
            return 0
        self._quiet_until = now + self.cooldown
        share = min(max(deficit, 0.1), 0.5)
        return min(clients, max(1, math.ceil(clients * share)))
