"""Real nats-server and PostgreSQL processes from wheels, on free local ports.

Used by ``aiop up`` for the embedded stack and by test fixtures; nothing here depends on
a server installed on the host.
"""

from aiop.devstack.nats import NatsServer
from aiop.devstack.ports import free_port
from aiop.devstack.postgres import PostgresServer
from aiop.devstack.waiting import until, until_sync

__all__ = ["NatsServer", "PostgresServer", "free_port", "until", "until_sync"]
