"""Bridges: the only code that imports two kinds of model."""
