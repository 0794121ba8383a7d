"""Figures and the shareable report, drawn from the store only."""
