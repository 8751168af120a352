"""JSON schemas for Placement request bodies and query strings, per microversion.

One module per resource, as Placement's ``placement/schemas``.
"""
