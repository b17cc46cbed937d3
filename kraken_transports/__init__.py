"""kraken_transports: drivers that perform the IO for kraken_proto."""
