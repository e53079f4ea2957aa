"""Checkout-only shim: ``python -m converters ...`` runs ``fastssl convert ...`` (fastssl_loader.commands.convert)."""
