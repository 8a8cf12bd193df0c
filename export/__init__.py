"""tfseg.export: SavedModel (TF Serving) and TFLite exports. Depends on tfseg, never the reverse."""
