"""The checks, one module per family of promises; each names the promises it owns."""
