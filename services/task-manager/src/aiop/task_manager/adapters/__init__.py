"""task-manager's I/O: PostgreSQL (asyncpg) and publishing through the broker."""

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A plain connection or one borrowed from the pool: the adapters work on either.
Conn = asyncpg.Connection | PoolConnectionProxy
