"""duetml: human-LLM collaborative image classification for non-experts, on your own machine."""

__version__ = "0.1.0"
