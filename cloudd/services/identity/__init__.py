"""Identity: the slice of Keystone v3 a compute cloud needs."""
