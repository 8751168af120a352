"""Host plumbing for guests' vifs (docs/network-design.md, N4).

One Linux bridge per network (``cdbr-…``), NAT for ``local`` networks, the
physical or VLAN interface of ``flat``/``vlan`` ones, dnsmasq per network with
static DHCP entries, security groups as nftables rules per tap, and the
metadata DNAT. Everything is derived from the vifs of the instances on this
host, kept in the agent's state directory, so a restart reconciles.
"""

from cloudd.agent.network.host import HostNetwork
from cloudd.agent.network.runner import Runner

__all__ = ["HostNetwork", "Runner"]
