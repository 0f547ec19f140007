"""Z-Image Space: text-to-image and image editing that keeps its privacy policy."""
