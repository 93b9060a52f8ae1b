"""HTTP adapters: thin routes that turn requests into calls on the store."""
