"""The YAML configs shipped with tfseg (model scales, datasets, recipes, export options)."""
