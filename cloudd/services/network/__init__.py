"""The Network API (a Neutron v2.0 subset) and the in-process NetworkService."""
