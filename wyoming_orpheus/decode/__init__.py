"""The decode path: SNAC loading, the streaming decoders, the decode workers, hardware tiers."""
