"""Image quality measured from clinical series themselves (not from phantoms)."""
