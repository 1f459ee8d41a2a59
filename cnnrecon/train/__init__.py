"""cnnrecon.train."""
