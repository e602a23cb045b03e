"""The package version (the one number ``pyproject.toml`` also states).

>>> __version__
'0.1.0'
"""
__version__ = "0.1.0"
__all__ = ["__version__"]
