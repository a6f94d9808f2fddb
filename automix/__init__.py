"""automix: automatic mixing and mastering toward a reference production."""

__version__ = "0.1.0"
