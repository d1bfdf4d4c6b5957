"""Evaluation of trained models with the disentanglement metrics."""
