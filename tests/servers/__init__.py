"""Real servers on loopback for the test suite (no Docker): moto, Ceph RGW, Azurite."""
