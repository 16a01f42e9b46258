"""Projection: bias directions removed from the residual stream, no training (a baseline)."""
