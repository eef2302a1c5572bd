"""Docker Engine API handlers, one small handler per Docker operation."""
