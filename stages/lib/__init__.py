"""Shared pieces of the stages: params loading, atomic files, record ids, compose.

Keep this package light to import: torch, transformers and peft are imported
inside the stages that need them.
"""
