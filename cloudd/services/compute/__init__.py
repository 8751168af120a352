"""Compute: the Nova API v2.1, the conductor, the scheduler and the agent hub."""
