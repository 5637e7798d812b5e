"""Intake beyond HTTP: messages from a RabbitMQ queue (``switchboard consume``) and batch exports
(``switchboard batch``), decided by the same engine and recorded in the same audit store.

Both are idempotent by the caller's message id: the decision id is derived from it, so a message
decided before (a redelivery, a resumed batch) returns the stored decision and adds no record.
"""
