"""Reading training data: the point-in-time engine, entity frames, training datasets and their splits."""
