"""cnnrecon.ops."""
