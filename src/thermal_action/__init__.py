"""thermal-action: SlowFast-style action detection on low-resolution thermal recordings."""

__version__ = "0.1.0"
