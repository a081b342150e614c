"""qcompare: compare LLM quantization methods on quality, speed and memory."""

__version__ = "0.1.0"
