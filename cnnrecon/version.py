"""The cnnrecon release, recorded in every run's provenance and every export's manifest."""

__version__ = '0.1.0'
