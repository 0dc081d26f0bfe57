"""fpipe: point-in-time-correct training data, train/serve skew reports, time-aware XGBoost models."""

__version__ = "0.1.0"
