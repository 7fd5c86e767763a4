"""What every AIOP service shares, wired the same way in each: the Service object (the
bus, its consumers, endpoints, listeners and lifecycle), the delivery policy, tracing,
streams and KV buckets."""

from aiop.servicekit.bus import EventBus, UndeclaredEvent
from aiop.servicekit.consumer import Delivery, Outcomes
from aiop.servicekit.delivery import DeliveryPolicy, Permanent
from aiop.servicekit.kv import KeyMirror, open_bucket, open_object_store
from aiop.servicekit.service import Service
from aiop.servicekit.settings import ServiceSettings

__all__ = [
    "Delivery",
    "DeliveryPolicy",
    "EventBus",
    "KeyMirror",
    "Outcomes",
    "Permanent",
    "Service",
    "ServiceSettings",
    "UndeclaredEvent",
    "open_bucket",
    "open_object_store",
]
