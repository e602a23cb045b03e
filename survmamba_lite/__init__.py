"""survmamba_lite: selective state-space models for multi-modal survival prediction."""
__version__ = "0.1.0"
