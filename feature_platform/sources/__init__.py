"""Where a feature group's inputs come from and how they are read (landing folders today)."""
