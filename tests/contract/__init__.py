"""One contract suite for the LightningBackend port, run against every adapter."""
