"""Benchmarks (not tests): ``python -m bench store|bot|cli``. They print figures and ratios."""
