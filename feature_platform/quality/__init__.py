"""Data quality: validation (Pandera), the write gate, drift (Evidently), freshness and alerts."""
