"""cnnrecon.weights."""
