"""videofix: temporally stable face restoration for video."""

__version__ = "0.1.0"
