"""Faithful local stand-ins for what cannot exist in the test machines: the model and the hub."""
