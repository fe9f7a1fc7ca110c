"""collector: catch repeated IPsec invalid-SPI flows and capture both tunnel ends."""

__version__ = "0.1.0"
