"""Chatbot logic with no I/O: entity extraction (and, later, intents and dialogue)."""
