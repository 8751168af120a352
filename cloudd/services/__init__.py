"""The in-process OpenStack services: one package per API."""
