"""What handlers receive: `Services` and the two feature services built on it, the review queue and the trigger
kernel. It sits above both (and `Services` below them), so neither container names a layer above its own; the
features below are handed what they call (`consider_fix` its `Triggers`, the sweeper its `QueueService`). The
composition root (`bot.root.compose`) builds one per process."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.queue.service import QueueService
from bot.services import Services
from bot.triggers import Triggers


@dataclass
class Features(Services):
    # Built on the services above by `bot.root.compose` (both hold this object, so they come after it).
    queue: QueueService = field(init=False, repr=False)
    triggers: Triggers = field(init=False, repr=False)
