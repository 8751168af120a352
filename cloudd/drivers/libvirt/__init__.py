"""The libvirt driver: real guests under QEMU/KVM.

``domain.py`` renders domain XML from plain data (pure functions, golden-file
tested); ``driver.py`` runs libvirt's blocking calls in threads.
"""
