"""cnnrecon.style: image synthesis with a frozen VGG loss network (Gatys image optimisation so far)."""
