"""Gymnasium portfolio environments (numpy at step time; torch is never imported here)."""
