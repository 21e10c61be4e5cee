"""The sandbox's behaviour: every change GitHub would make (and announce) for REST calls, pushes and the control API.

`Engine` (in `core`) holds the shared state and emits events; each resource module owns one part of GitHub.
"""

from bot.sandbox.engine.base import AppCredentials, Json, RefUpdate, Violation
from bot.sandbox.engine.core import Engine, WebhookValidator

__all__ = ["AppCredentials", "Engine", "Json", "RefUpdate", "Violation", "WebhookValidator"]
