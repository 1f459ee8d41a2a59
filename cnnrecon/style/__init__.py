"""cnnrecon.style."""
