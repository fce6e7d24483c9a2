"""Experiments built from the library: studies that train several runs and compare them."""
