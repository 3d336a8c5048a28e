"""Exercises that check themselves: see exercises/README.md."""
