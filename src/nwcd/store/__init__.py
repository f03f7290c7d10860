"""Store adapters: durable connections, request claims, payments and responses."""
