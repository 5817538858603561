"""Window and tile arithmetic shared by the stream consumer, the online reads and historical retrieval."""
