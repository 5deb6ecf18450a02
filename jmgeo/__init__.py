"""Jiangmen spatial data platform (江门市政务大数据平台 · 地理空间框架).

The server package: settings, database access, the ``jmgeo`` CLI and the ASGI app that
mounts pygeoapi beside the platform's own APIs.
"""

__version__ = "0.1.0"
