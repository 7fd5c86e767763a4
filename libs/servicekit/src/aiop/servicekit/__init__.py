"""What every AIOP service shares, wired the same way in each: settings, tracing, the
broker with AIOP's delivery policy, event publishing, stream setup and readiness."""

from aiop.servicekit.bus import EventBus, make_broker, typed
from aiop.servicekit.consumer import Delivery, Outcomes, durable_batch_consumer, durable_consumer
from aiop.servicekit.delivery import DeliveryPolicy, Permanent
from aiop.servicekit.settings import ServiceSettings
from aiop.servicekit.streams import ensure_streams
from aiop.servicekit.telemetry import setup_tracing

__all__ = [
    "Delivery",
    "DeliveryPolicy",
    "EventBus",
    "Outcomes",
    "Permanent",
    "ServiceSettings",
    "durable_batch_consumer",
    "durable_consumer",
    "ensure_streams",
    "make_broker",
    "setup_tracing",
    "typed",
]
