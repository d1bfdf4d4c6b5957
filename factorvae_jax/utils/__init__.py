"""Small helpers every layer may use (no JAX, no project imports)."""
