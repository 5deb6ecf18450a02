"""The spatial framework (地理空间框架): canonical CRS, input CRS registry, transforms, regions.

All CRS logic lives here; nothing else builds a pyproj Transformer.
"""
