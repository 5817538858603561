"""The HTTP feature server over the online store."""
