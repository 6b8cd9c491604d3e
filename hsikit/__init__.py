"""hsikit: a hyperspectral remote-sensing toolkit."""

__version__ = "0.1.0"
