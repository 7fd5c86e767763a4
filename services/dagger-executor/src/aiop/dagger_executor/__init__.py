"""AIOP executor: claims requested workflows of its pool and runs their steps.

Steps run with Dagger when an engine is reachable, otherwise with the local runner
(a host subprocess per step; the image is recorded, not pulled).
"""
