"""The distributor's decisions, free of I/O: liveness, pool choice, what to (re)send."""
