"""Sweep definitions: ``python -m experiments.sweep --sweep=<file>[:arg]``."""
