"""Data side: media reading, face detection and cropping, dataset adapters, the manifest and splits."""
