"""Debiasing methods: each module is one config dataclass plus a recipe that trains an adapter."""
