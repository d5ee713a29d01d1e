"""System and pipeline snapshots: GET /monitoring/system and the metrics:* topics."""
