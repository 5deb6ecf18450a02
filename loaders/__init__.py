"""Loaders: department files → the framework (detect, reproject, validate, publish)."""
