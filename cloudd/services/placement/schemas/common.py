"""Patterns shared by several Placement schemas."""

_NAME_CHAR = "[A-Z0-9_]"
# A resource class or trait name; custom ones carry the CUSTOM_ prefix.
RC_PATTERN = f"^{_NAME_CHAR}+$"
CUSTOM_RC_PATTERN = f"^CUSTOM_{_NAME_CHAR}+$"
CUSTOM_TRAIT_PATTERN = CUSTOM_RC_PATTERN
CONSUMER_TYPE_PATTERN = RC_PATTERN
CONSUMER_TYPE_GET_PATTERN = f"{CONSUMER_TYPE_PATTERN}|^all|^unknown$"

# Largest values the inventory columns take (Placement's db constants).
MAX_INT = 0x7FFFFFFF
SQL_SP_FLOAT_MAX = 3.40282e+38
