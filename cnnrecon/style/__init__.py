"""cnnrecon.style: synthesis with a frozen VGG: gatys (optimise an image), fast (trained styles), adain (any style)."""
