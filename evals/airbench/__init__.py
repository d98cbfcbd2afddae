"""AIR-Bench runner: generate answers through any OpenAI-compatible endpoint, score them as the reference does."""
