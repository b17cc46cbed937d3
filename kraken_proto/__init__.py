"""kraken_proto: the sans-IO core of kraken-ws-sdk."""
