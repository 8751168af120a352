"""The compute agent (`cloudd agent`): a thin process driving one hypervisor.

It connects to the controller's websocket (protocol.py), executes the
commands it is sent through a driver (executor.py), keeps the results it
has not yet had acknowledged in its state directory (state.py), and
reconnects with capped exponential backoff (client.py). It never touches
the database. `cloudd serve` runs the same client as an in-process task for
its local host (``[compute] local_agent``).
"""

from __future__ import annotations

from pathlib import Path


async def open_driver(kind: str, host: str, cfg, *, controller: str = "",
                      secret: str = ""):
    """The driver named ``kind`` ("fake" or "libvirt") for ``host``, connected.

    RuntimeError (with words for the operator) when it cannot be had.
    The libvirt driver fetches base images from ``controller`` with the
    host's credential ``secret``.
    """
    if kind == "fake":
        from cloudd.drivers.fake import FakeDriver
        return FakeDriver.from_config(host, cfg.fake_driver)
    if kind != "libvirt":
        raise RuntimeError(f"unknown driver {kind!r}")
    try:
        from cloudd.drivers.libvirt.driver import LibvirtDriver
    except ImportError as e:
        raise RuntimeError(f"the libvirt driver is not available: {e}") from None
    try:
        driver = LibvirtDriver.from_config(host, cfg, controller=controller, secret=secret,
                                           state_dir=state_dir(cfg, host))
        await driver.connect()
    except Exception as e:          # libvirt raises its own error types
        raise RuntimeError(f"cannot start the libvirt driver: {e}") from e
    return driver


def state_dir(cfg, host: str) -> Path:
    """``[agent] state_dir``, by default DATA_DIR/agent-HOST."""
    if cfg.agent.state_dir:
        return Path(cfg.agent.state_dir).expanduser()
    return cfg.data_dir / f"agent-{host}"
