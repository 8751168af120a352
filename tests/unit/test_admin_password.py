"""The admin password a server create generates when none is given: Nova's
length and alphabet (no look-alike characters), every symbol equally likely,
a fresh one each time."""

from __future__ import annotations

import collections

from cloudd.services.compute.server_create import _PASSWORD_SYMBOLS, generate_password


def test_passwords_use_the_alphabet_evenly_and_differ():
    passwords = [generate_password() for _ in range(20000)]
    assert {len(p) for p in passwords} == {12}
    assert len(set(passwords)) == len(passwords)
    counts = collections.Counter("".join(passwords))
    assert set(counts) == set(_PASSWORD_SYMBOLS)
    expected = 12 * 20000 / len(_PASSWORD_SYMBOLS)          # 4,210 each
    # A byte taken modulo 57 without dropping the top ones would give the
    # first 28 symbols 5/4 of the others' share; this bound allows ~6 sigma.
    assert all(abs(n - expected) < 0.1 * expected for n in counts.values())
    assert len(generate_password(40)) == 40
