"""Command-line converters that turn common dataset layouts into one fastssl_loader file."""
