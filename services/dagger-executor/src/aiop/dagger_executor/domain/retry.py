"""How long a step waits before its next try (the policy is described on RetryPolicy)."""

import random
from collections.abc import Callable

from aiop.contracts import RetryPolicy

ONE_TRY = RetryPolicy(attempts=1)


def retry_delay(
    policy: RetryPolicy, failed_try: int, rand: Callable[[], float] = random.random
) -> float:
    """Seconds to wait after try ``failed_try`` (from 1) failed: exponential, capped,
    jittered downwards (never longer than the cap, so ``max_backoff`` is a promise)."""
    # 2**n overflows a float past n = 1023; the cap is reached long before that.
    exponential = policy.backoff * 2.0 ** min(failed_try - 1, 1023)
    return min(policy.max_backoff, exponential) * (1.0 - policy.jitter * rand())
