"""cnnrecon.data."""
