"""Models arrive with this app's issue; the hub owns adapters and versions."""
