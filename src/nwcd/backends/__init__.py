"""Lightning backend adapters: one per technology, each implementing ``LightningBackend``."""
