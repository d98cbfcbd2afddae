"""Evaluations of lalm models over HTTP (DESIGN.md: evals/ speaks HTTP only)."""
