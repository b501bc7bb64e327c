"""Networks. Inputs are (B, 3, H, W) uint8 RGB crops; each model normalizes them itself."""
