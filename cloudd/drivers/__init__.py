"""Hypervisor drivers behind one small async interface (see base.Driver)."""
