"""cnnrecon.models."""
