"""Equalisation: make a stereotype and its counterpart equally likely, anchored to the base model."""
