"""The embedded default model: its training recipe (recipe.py) and the build of its checkpoint (export.py)."""
