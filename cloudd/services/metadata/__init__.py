"""Instance metadata: the documents a guest reads from its config drive and from
the metadata service (Nova's nova/api/metadata), and the controller's endpoint
the agents' metadata proxies forward to."""
