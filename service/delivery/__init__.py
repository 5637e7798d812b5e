"""Delivery: committed hand-offs leave the process here, and only here, after the commit.

``Dispatcher`` reads the outbox (``service.audit.outbox``) and delivers through ``Integrations``:
``RabbitIntegrations`` (a durable topic exchange with publisher confirms) when
``SWITCHBOARD_BROKER_URL`` is set, ``LoggingIntegrations`` (a JSON log line each) otherwise.
"""

from service.delivery.dispatcher import DeliveryPolicy, Dispatcher
from service.delivery.integrations import Integrations, LoggingIntegrations, RecordingIntegrations
from service.delivery.metrics import DeliveryMetrics

__all__ = [
    "DeliveryMetrics",
    "DeliveryPolicy",
    "Dispatcher",
    "Integrations",
    "LoggingIntegrations",
    "RecordingIntegrations",
]
