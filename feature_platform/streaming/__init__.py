"""Running a stream group: the consumer that keeps its online windows and offline events up to date."""
