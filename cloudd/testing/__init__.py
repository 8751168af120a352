"""Helpers for cloudd's own tests and benchmarks: throwaway PostgreSQL, server processes."""
